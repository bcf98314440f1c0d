"""The browsable toy run: a hierarchy world of named features, a vocabulary of its feature combinations, a
model-free "model" whose residual stream is that world, and an SAE trained on it.

The toy is a *model* the pipeline runs unchanged (dashboards, probes, k-sparse probing, both metrics, every page):

- **World** (precompute/toy/world.py, sae-lens synthetic): 4 parents (animal, plant, metal, tool), each with 5
  mutually exclusive children (a child fires only with its parent), and 8 independent filler features
  (big, small, ...), 32 near-orthogonal unit directions in d_model 64.
- **Vocabulary**: each word token is one combination of ground-truth features, named after them: ``animal`` (the
  parent alone), ``animalCat`` (parent + child), ``animalCatBig`` (+ a filler, so each parent has 54 distinct
  words: the probe pipeline needs >= 20 per class and 5 folds), ``big`` (a filler alone); plus ``is`` (the
  prompt's template) and ``<|endoftext|>``/``<unk>``. Alphabetic, so the task vocabulary keeps them.
- **Model**: a 1-layer attention-only ``HookedTransformer`` with no normalisation whose embedding of a token is
  the sum of its features' directions, W_pos = 0 and W_O = 0: the residual stream at ``blocks.0.hook_resid_pre``
  (and everywhere after) is exactly the token's feature combination. W_U is W_E transposed, so a latent's logit
  lens names the tokens that carry its direction. The model cannot answer the task (attention adds nothing), so
  the toy is built with ``--no-ablation-metric`` and the pages say the model check does not apply.
- **SAE**: a ReLU/L1 ``StandardTrainingSAE`` of 32 latents trained with ``train_toy_sae`` on the hierarchy world;
  with the parent firing only alongside its children some of the time, L1 pressure makes child latents carry
  the parent direction (absorption) where the truth is known.

The weights (feature directions, embedding), the tokenizer, the SAE and the dashboard corpus are shipped under
assets/ (``python -m precompute toy`` rewrites them from the seed): the orthogonalising initialiser and the
training run are float computations, so shipping them keeps the demo identical across machines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from precompute.toy import TOY_MODEL_NAME
from precompute.toy.world import SAESpec, ToySpec, build_feature_dict, build_generator, sample, train_sae

TOY_TASK_NAME = "toy_hierarchy"
TOY_HOOK = "blocks.0.hook_resid_pre"
REPO = Path(__file__).resolve().parents[2]
TOY_DIR = REPO / "assets" / "toy"  # tokenizer/, weights.safetensors, corpus.parquet
TOY_SAE_KEY = "toy-hierarchy-relu-32"
TOY_SAE_DIR = REPO / "assets" / "saes" / TOY_SAE_KEY
SEED = 0

PARENTS = ("animal", "plant", "metal", "tool")
CHILDREN = {
    "animal": ("cat", "dog", "fox", "owl", "bee"),
    "plant": ("oak", "fern", "moss", "rose", "palm"),
    "metal": ("iron", "gold", "zinc", "lead", "tin"),
    "tool": ("saw", "axe", "drill", "hammer", "wrench"),
}
FILLERS = ("big", "small", "old", "new", "warm", "cold", "soft", "loud")
TEMPLATE_WORD = "is"  # the task's prompt line is "{word} is" and its answer the parent's name
SEPARATOR = "<|endoftext|>"
UNKNOWN = "<unk>"
D_MODEL = 64
# L1 0.3 absorbs reliably in the tests' one-parent toy (bench/toy_absorption.py); 1M training samples.
TOY_SAE_SPEC = SAESpec(l1_coefficient=0.3, training_samples=1024 * 1000)
CORPUS_ROWS, CORPUS_CONTEXT = 1024, 32


@dataclass(frozen=True)
class Feature:
    index: int
    name: str
    role: str  # 'parent' | 'child' | 'filler'
    parent: str | None  # a child's parent (its class); a parent's own name; None for fillers


@dataclass(frozen=True)
class ToyWord:
    """A word token: one combination of ground-truth features."""
    text: str
    parent: str | None  # its class (None: a filler alone)
    child: str | None
    filler: str | None

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(f for f in (self.parent, self.child, self.filler) if f is not None)

    @property
    def absorbable(self) -> bool:
        """A child is present: the parent may be absorbed into the child's latent."""
        return self.child is not None


def features() -> list[Feature]:
    """Parents first, then each parent's children, then fillers; the index is the FeatureDictionary row."""
    out = [Feature(i, p, "parent", p) for i, p in enumerate(PARENTS)]
    for parent in PARENTS:
        for child in CHILDREN[parent]:
            out.append(Feature(len(out), child, "child", parent))
    out += [Feature(len(out) + n, f, "filler", None) for n, f in enumerate(FILLERS)]
    return out


def feature_index() -> dict[str, int]:
    return {f.name: f.index for f in features()}


def toy_spec() -> ToySpec:
    index = feature_index()
    groups = tuple((index[p], tuple(index[c] for c in CHILDREN[p])) for p in PARENTS)
    return ToySpec(num_features=len(index), d_model=D_MODEL, groups=groups)


def word_text(parent: str | None, child: str | None, filler: str | None) -> str:
    """``animalCatBig``: the features' names, camel-cased (alphabetic, so the task vocabulary keeps it)."""
    parts = [p for p in (parent, child, filler) if p is not None]
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


def words() -> list[ToyWord]:
    out = [ToyWord(word_text(p, c, f), p, c, f)
           for p in PARENTS for c in (None, *CHILDREN[p]) for f in (None, *FILLERS)]
    return out + [ToyWord(f, None, None, f) for f in FILLERS]


@cache
def words_by_text() -> dict[str, ToyWord]:
    return {w.text: w for w in words()}


def vocabulary() -> list[str]:
    """Token strings in id order: specials first, then the template word, then the word tokens."""
    return [SEPARATOR, UNKNOWN, TEMPLATE_WORD] + [w.text for w in words()]


def token_features(vocab: list[str]) -> np.ndarray:
    """[d_vocab, num_features] 0/1: which ground-truth features each token carries (specials: none)."""
    index = feature_index()
    acts = np.zeros((len(vocab), len(index)), dtype=np.float32)
    table = words_by_text()
    for token_id, text in enumerate(vocab):
        if text in table:
            acts[token_id, [index[f] for f in table[text].features]] = 1.0
    return acts


def toy_labeller():
    """The toy_hierarchy task's labeller: a word's parent (None for fillers and any other token)."""
    table = words_by_text()
    return lambda word: table[word].parent if word in table else None


# --- building the shipped files ------------------------------------------------------------------------------


def build_tokenizer(vocab: list[str]):
    """WordLevel over the toy vocabulary, split on whitespace: every prompt the pipeline builds ("\\nanimalCat is
    animal\\n...") tokenizes word by word."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token=UNKNOWN))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token=UNKNOWN, eos_token=SEPARATOR,
                                   bos_token=SEPARATOR, pad_token=SEPARATOR)


def corpus_rows(feature_dict, generator, rows: int = CORPUS_ROWS, context: int = CORPUS_CONTEXT,
                seed: int = SEED) -> np.ndarray:
    """[rows, context] token ids drawn from the hierarchy generator's co-occurrence: each sample becomes the word
    of one of its active parents (with that parent's child, if one fired) and one of its active fillers; samples
    with no feature are skipped. A latent's top contexts then show which combinations it fires on."""
    vocab = vocabulary()
    ids = {t: i for i, t in enumerate(vocab)}
    index = feature_index()
    rng = np.random.default_rng(seed)
    out: list[int] = []
    draw = 0
    while len(out) < rows * context:
        _, acts = sample(feature_dict, generator, 4096, seed=seed + 1000 + draw)
        draw += 1
        for row in (acts.numpy() > 0):
            active_parents = [p for p in PARENTS if row[index[p]]]
            active_fillers = [f for f in FILLERS if row[index[f]]]
            if not active_parents and not active_fillers:
                continue
            parent = active_parents[rng.integers(len(active_parents))] if active_parents else None
            child = next((c for c in CHILDREN[parent] if row[index[c]]), None) if parent else None
            filler = active_fillers[rng.integers(len(active_fillers))] if active_fillers else None
            out.append(ids[word_text(parent, child, filler)])
    return np.asarray(out[: rows * context], dtype=np.int32).reshape(rows, context)


def write_toy_assets(toy_dir: Path = TOY_DIR, sae_dir: Path = TOY_SAE_DIR, log=print) -> None:
    """Rewrites the shipped toy from SEED: tokenizer, weights (feature directions, embedding), SAE, corpus."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from safetensors.torch import save_file

    spec = toy_spec()
    feature_dict = build_feature_dict(spec, seed=SEED)
    generator = build_generator(spec, hierarchy=True)
    vocab = vocabulary()
    toy_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(vocab).save_pretrained(str(toy_dir / "tokenizer"))
    directions = feature_dict.feature_vectors.detach().float().contiguous()
    acts = torch.from_numpy(token_features(vocab))
    embedding = (acts @ directions).contiguous()
    save_file({"feature_directions": directions, "token_features": acts, "W_E": embedding},
              str(toy_dir / "weights.safetensors"))
    (toy_dir / "features.json").write_text(json.dumps([f.__dict__ for f in features()], indent=1) + "\n")
    log(f"wrote {toy_dir}: {len(vocab)} tokens, {len(features())} features")

    sae = train_sae(feature_dict, generator, TOY_SAE_SPEC, seed=SEED)
    save_toy_sae(sae, sae_dir)
    log(f"wrote {sae_dir}")

    rows = corpus_rows(feature_dict, generator)
    pq.write_table(pa.table({"input_ids": pa.array(list(rows), type=pa.list_(pa.int32()))}),
                   str(toy_dir / "corpus.parquet"))
    log(f"wrote {toy_dir / 'corpus.parquet'}: {rows.shape[0]} rows of {rows.shape[1]} tokens")


def save_toy_sae(training_sae, folder: Path) -> Path:
    """sae-lens's own training -> inference conversion, with the metadata a build checks (the model it reads and
    its hook), decoder rows folded to unit norm as the metrics assume."""
    from sae_lens import SAE

    training_sae.cfg.metadata.model_name = TOY_MODEL_NAME
    training_sae.cfg.metadata.hook_name = TOY_HOOK
    folder.mkdir(parents=True, exist_ok=True)
    training_sae.save_inference_model(str(folder))
    sae = SAE.load_from_disk(str(folder), device="cpu")
    sae.fold_W_dec_norm()
    sae.save_model(str(folder))
    return folder


# --- loading ----------------------------------------------------------------------------------------------------


def load_toy_tokenizer(toy_dir: Path = TOY_DIR):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(toy_dir / "tokenizer"))


def load_toy_weights(toy_dir: Path = TOY_DIR) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(toy_dir / "weights.safetensors"))


def load_toy_model(device: str = "cpu", dtype: torch.dtype = torch.float32, toy_dir: Path = TOY_DIR):
    """The toy "model": residual = the token's feature combination at every position (see the module doc)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    weights = load_toy_weights(toy_dir)
    W_E = weights["W_E"].to(dtype)
    d_vocab, d_model = W_E.shape
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=d_model, n_ctx=512, d_head=d_model // 4, n_heads=4, attn_only=True,
        normalization_type=None, d_vocab=d_vocab, act_fn=None, positional_embedding_type="standard",
        default_prepend_bos=False, tokenizer_prepends_bos=False, model_name=TOY_MODEL_NAME, dtype=dtype,
        device=device, original_architecture="ToyHierarchy")
    model = HookedTransformer(cfg, tokenizer=load_toy_tokenizer(toy_dir), move_to_device=False)
    state = {name: torch.zeros_like(value) for name, value in model.state_dict().items()}
    state["embed.W_E"] = W_E
    state["unembed.W_U"] = W_E.T.contiguous()  # tied: a latent's logit lens lists the tokens along its decoder
    # attention masks and IGNORE buffers keep their values; every weight but the embeddings is zero (W_O = 0:
    # attention adds nothing, W_pos = 0: no position)
    for name, value in model.state_dict().items():
        if not name.endswith(("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_pos", "b_U", "W_E", "W_U")):
            state[name] = value
    model.load_state_dict(state)
    model.to(device)
    model.eval()
    return model
