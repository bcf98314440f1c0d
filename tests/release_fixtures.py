"""An offline Hugging Face hub cache holding what the release path's real names resolve to, tiny.

`python -m precompute build --model gpt2-small --sae gpt2-small-res-jb:blocks.0.hook_resid_pre` goes
through `HookedTransformer.from_pretrained` (TransformerLens resolves `gpt2-small` to the hub repo `gpt2`)
and `SAE.from_pretrained` (sae-lens's yaml maps the release to `jbloom/GPT2-Small-SAEs-Reformatted`).
Both only read the hub cache when `HF_HUB_OFFLINE=1`, so writing these repos in the cache's layout
(`hub/models--ORG--NAME/snapshots/<commit>/...` and `refs/main` naming the commit) makes the real code
paths run offline, unchanged:

- `gpt2`: a 2-layer GPT-2 (d_model 64) with random weights, plus a first-letter direction planted in each
  alphabetic token's embedding (so the first-letter probes have something to find), and a byte-level BPE
  tokenizer trained here on first-letter prompts over ~400 common English words, so every word is one token
  (with and without its leading space) and so are the answers " A" ... " Z";
- `jbloom/GPT2-Small-SAEs-Reformatted`: the release's pre-6.0 sae-lens layout (cfg.json with
  `hook_point`, sae_weights.safetensors, sparsity.safetensors) for a ReLU SAE of width 256 at
  blocks.0.hook_resid_pre and blocks.1.hook_resid_pre, latents 0..25 reading the planted letter directions.

Not here: Gemma-2 / Gemma Scope. TransformerLens builds gemma-2-2b's config from its name (d_model 2304,
26 layers, a 256k vocabulary), not from config.json, and sae-lens's gemma_2 loader fixes d_in at 2304 and
d_sae from the folder's width, so no tiny stand-in can pass through those paths unchanged.

The corpus is a local text file of seeded sentences over the same words: `corpus --source NAME` reads a hub
dataset only with hub access (`datasets.load_dataset` raises ConnectionError under HF_HUB_OFFLINE=1 even with
the dataset repo in the hub cache, streaming or not; its offline mode needs its own prepared-dataset cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch

MODEL_REPO = "gpt2"  # get_official_model_name("gpt2-small")
SAE_RELEASE = "gpt2-small-res-jb"
SAE_REPO = "jbloom/GPT2-Small-SAEs-Reformatted"  # the release's repo_id in sae-lens's pretrained_saes.yaml
SAE_IDS = ("blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre")
D_MODEL = 64
N_LAYERS = 2
N_HEADS = 4
N_POSITIONS = 256
D_SAE = 256
VOCAB_SIZE = 3000
LETTER_SCALE = 0.4  # norm of the first-letter direction planted in alphabetic tokens' embeddings
ENDOFTEXT = "<|endoftext|>"

# About 15 common words per letter: the first-letter task needs single-token words of every letter.
WORDS_BY_LETTER = {
    "a": "about above across act add after again age air all also always animal answer apple area arm art ask away",
    "b": "baby back bad ball bank base bear beat bed before begin best big bird black blue boat body book box boy",
    "c": "call came can car card care carry case cat cause cell center chair change city class clear cold come cook",
    "d": "dance dark day dead deal dear deep desk did different dinner do doctor dog door down draw dream dress drink",
    "e": "each ear early earth east easy eat edge egg eight end energy enough enter even evening ever every eye",
    "f": "face fact fall family far farm fast father fear feel few field fight fill find fine fire first fish five",
    "g": "game garden gas gate gave general get gift girl give glad glass go gold good got grass great green group",
    "h": "had hair half hall hand happy hard hat have he head hear heart heat help her here high hill hold home",
    "i": "ice idea if image in inch include inside into iron island it item its",
    "j": "jacket jam job join joke journey joy judge juice jump june jungle just",
    "k": "keep kept key kick kid kill kind king kiss kitchen knee knew knife know",
    "l": "lady lake land large last late laugh law lay lead learn leave left leg less letter life light like line",
    "m": "machine made main make man many map mark market may me mean meet men middle might milk mind money moon",
    "n": "name narrow nation natural near neck need never new next nice night nine no noise north nose note now",
    "o": "object ocean odd of off offer office often oil old on once one only open or order other our out over",
    "p": "page paint pair paper park part party pass past path pay people pick picture piece place plan plant play",
    "q": "quality quarter queen question quick quiet quite quote",
    "r": "race radio rain raise ran reach read ready real red rest rich ride right ring river road rock room round",
    "s": "sad safe said salt same sand save say school sea seat second see seed sell send shape ship shoe short",
    "t": "table tail take talk tall teach team tell ten test than that the their them then there they thing time",
    "u": "ugly uncle under unit until up upon upper us use useful usual",
    "v": "valley value various vast vegetable very video view village visit voice vote",
    "w": "wait walk wall want warm was wash watch water wave way we wear week well went west what wheel when white",
    "x": "xenon xerox xray xylophone",
    "y": "yard yeah year yellow yes yesterday yet you young your youth",
    "z": "zebra zero zinc zone zoo",
}
WORDS = [w for letter in sorted(WORDS_BY_LETTER) for w in WORDS_BY_LETTER[letter].split()]


@dataclass(frozen=True)
class ReleaseCache:
    """A temporary HF_HOME and the environment that makes a subprocess read only from it."""

    hf_home: Path
    corpus_text: Path  # local text file for `python -m precompute corpus --source`
    vocab_size: int  # the tokenizer's, = the model's d_vocab

    @property
    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(HF_HOME=str(self.hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   TOKENIZERS_PARALLELISM="false", EXPLORER_DEVICE="cpu")
        return env


def fake_commit(repo_id: str) -> str:
    """A stable 40-hex commit hash per repo (the cache only needs refs/main to name a snapshot folder)."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


def snapshot_dir(hf_home: Path, repo_id: str, repo_type: str = "model") -> Path:
    """The snapshot folder of `repo_id` in the hub cache layout, with refs/main pointing at it."""
    repo_folder = hf_home / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"
    commit = fake_commit(repo_id)
    (repo_folder / "refs").mkdir(parents=True, exist_ok=True)
    (repo_folder / "refs" / "main").write_text(commit)
    snapshot = repo_folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def prompt_lines(words: list[str]) -> list[str]:
    """The first-letter task's lines, with and without the word's leading space."""
    lines = []
    for word in words:
        lines.append(f"{word} has the first letter: {word[0].upper()}")
        lines.append(f" {word} has the first letter: {word[0].upper()}")
    return lines


def sentences(words: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        chosen = [rng.choice(words) for _ in range(rng.randint(5, 14))]
        out.append(" ".join(chosen).capitalize() + ".")
    return out


def build_tokenizer(words: list[str] = WORDS, vocab_size: int = VOCAB_SIZE):
    """A GPT-2 style byte-level BPE (`Ġ` for a leading space, `<|endoftext|>` as BOS/EOS/UNK), trained on
    prompt lines and sentences repeated often enough that every word and " A".." Z" is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[ENDOFTEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = (prompt_lines(words) + sentences(words, 400, seed=1)) * 4
    tokenizer.train_from_iterator(text, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=ENDOFTEXT, eos_token=ENDOFTEXT,
                                   unk_token=ENDOFTEXT, model_max_length=N_POSITIONS)


def write_gpt2_repo(hf_home: Path, tokenizer, seed: int = 0) -> Path:
    """`gpt2` as transformers saves it (config.json, model.safetensors, tokenizer files), tiny and random."""
    from transformers import GPT2Config, GPT2LMHeadModel

    snapshot = snapshot_dir(hf_home, MODEL_REPO)
    config = GPT2Config(n_layer=N_LAYERS, n_embd=D_MODEL, n_head=N_HEADS, n_positions=N_POSITIONS,
                        n_ctx=N_POSITIONS, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, architectures=["GPT2LMHeadModel"])
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        model.transformer.wte.weight += LETTER_SCALE * token_letter_directions(tokenizer)
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    return snapshot


def letter_directions(seed: int = 7) -> torch.Tensor:
    """[26, D_MODEL] orthonormal directions, one per first letter."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(D_MODEL, 26, generator=gen))
    return q.T.contiguous()


def token_letter_directions(tokenizer) -> torch.Tensor:
    """[vocab, D_MODEL]: each alphabetic token's first-letter direction (zero for other tokens). Planted in
    the embeddings so a linear probe at blocks.0.hook_resid_pre can read the first letter, as in a trained
    model; everything else about the model stays random."""
    from precompute.absorption.vocab import alphabetic_vocabulary

    directions = letter_directions()
    planted = torch.zeros(len(tokenizer), D_MODEL)
    for word in alphabetic_vocabulary(tokenizer):
        planted[word.token_id] = directions[ord(word.letter) - ord("a")]
    return planted


def jb_cfg(sae_id: str) -> dict:
    """The release's cfg.json in its pre-6.0 form (sae-lens converts `hook_point` etc. on load)."""
    layer = int(sae_id.split(".")[1])
    return {
        "model_name": "gpt2-small", "hook_point": sae_id, "hook_point_layer": layer, "hook_point_head_index": None,
        "dataset_path": "Skylion007/openwebtext", "is_dataset_tokenized": False, "context_size": 128,
        "d_in": D_MODEL, "d_sae": D_SAE, "expansion_factor": D_SAE // D_MODEL, "b_dec_init_method": "geometric_median",
        "l1_coefficient": 8e-05, "lr": 0.0004, "device": "cpu", "seed": 42, "dtype": "torch.float32",
        "run_name": f"{D_SAE}-L1-8e-05-LR-0.0004-Tokens-3.000e+08",
    }


def jb_weights(seed: int) -> dict[str, torch.Tensor]:
    """A tied ReLU SAE: latents 0..25 read the planted letter directions, the rest random unit directions;
    the biases sit just above the random part of the residual (std ~0.03 at init), so latents are sparse."""
    gen = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(D_SAE, D_MODEL, generator=gen)
    W_dec[:26] = letter_directions() + 0.1 * W_dec[:26] / D_MODEL**0.5
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    b_enc = torch.full((D_SAE,), -0.08)
    b_enc[:26] = -LETTER_SCALE / 2
    return {"W_enc": W_dec.T.contiguous(), "b_enc": b_enc, "W_dec": W_dec, "b_dec": torch.zeros(D_MODEL)}


def write_sae_repo(hf_home: Path, sae_ids: tuple[str, ...] = SAE_IDS) -> Path:
    from safetensors.torch import save_file

    snapshot = snapshot_dir(hf_home, SAE_REPO)
    for seed, sae_id in enumerate(sae_ids):
        folder = snapshot / sae_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cfg.json").write_text(json.dumps(jb_cfg(sae_id)))
        save_file(jb_weights(seed), str(folder / "sae_weights.safetensors"))
        save_file({"sparsity": torch.full((D_SAE,), -3.0)}, str(folder / "sparsity.safetensors"))
    return snapshot


def write_corpus_text(path: Path, n_paragraphs: int = 300, seed: int = 2) -> Path:
    """Paragraphs (blank-line separated: one document each) of seeded sentences over WORDS."""
    rng = random.Random(seed)
    paragraphs = [" ".join(sentences(WORDS, rng.randint(3, 8), seed=rng.randrange(10**9)))
                  for _ in range(n_paragraphs)]
    path.write_text("\n\n".join(paragraphs) + "\n")
    return path


def build_release_cache(root: Path) -> ReleaseCache:
    hf_home = root / "hf_home"
    tokenizer = build_tokenizer()
    write_gpt2_repo(hf_home, tokenizer)
    write_sae_repo(hf_home)
    return ReleaseCache(hf_home=hf_home, corpus_text=write_corpus_text(root / "corpus.txt"), vocab_size=len(tokenizer))
