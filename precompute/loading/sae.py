"""Load SAEs through sae-lens: local folders (`SAE.load_from_disk`) or releases (`SAE.from_pretrained`)."""

from __future__ import annotations

import re

import torch
from sae_lens import SAE

from precompute.loading.spec import SAESpec, sae_key_from  # noqa: F401  (re-exported: callers name it here)


def load_sae(spec: SAESpec, device: str = "cpu") -> SAE:
    if spec.path is not None:
        sae = SAE.load_from_disk(str(spec.path), device=device)
    else:
        sae = SAE.from_pretrained(spec.release, spec.sae_id, device=device)
    sae = sae.to(dtype=torch.float32)  # shipped weights are fp16; compute in fp32
    sae.eval()
    return sae


def sae_config(spec: SAESpec) -> dict:
    """The SAE's sae-lens config (d_in, d_sae, metadata, ...) without its weights: a release's cfg.json with the
    overrides in sae-lens's yaml, or a local folder's cfg.json (older config layouts converted as
    `from_pretrained` converts them)."""
    from sae_lens.loading.pretrained_sae_loaders import (
        get_sae_lens_config_from_disk,
        handle_config_defaulting,
        load_sae_config_from_huggingface,
    )

    if spec.path is not None:
        return dict(handle_config_defaulting(get_sae_lens_config_from_disk(spec.path)))
    return dict(load_sae_config_from_huggingface(spec.release, spec.sae_id))


def sae_metadata(spec: SAESpec) -> dict:
    """The SAE's sae-lens metadata (model_name, hook_name, model_from_pretrained_kwargs, ...) from its config
    alone, without its weights."""
    return dict(sae_config(spec).get("metadata") or {})


def spec_hook_name(spec: SAESpec) -> str:
    """The hook an SAE reads, from its config (no weights); the SAE is loaded only when its config does not say."""
    cfg = sae_config(spec)
    hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name")
    return hook or sae_hook_name(load_sae(spec))


def specs_by_hook(specs: list[SAESpec]) -> dict[str, list[SAESpec]]:
    """The SAEs grouped by hook (in order of first appearance), from their configs, without loading weights."""
    groups: dict[str, list[SAESpec]] = {}
    for spec in specs:
        groups.setdefault(spec_hook_name(spec), []).append(spec)
    return groups


def spec_weight_bytes(spec: SAESpec) -> int:
    """Bytes of the SAE's float32 encoder and decoder (as load_sae holds them), from its config; 0 if unknown."""
    cfg = sae_config(spec)
    d_in, d_sae = cfg.get("d_in"), cfg.get("d_sae")
    return 2 * 4 * int(d_in) * int(d_sae) if d_in and d_sae else 0


def sae_architecture(sae: SAE) -> str:
    return sae.cfg.architecture() if callable(getattr(sae.cfg, "architecture", None)) else type(sae).__name__


def sae_hook_name(sae: SAE) -> str:
    hook = sae.cfg.metadata.hook_name
    if not hook:
        raise ValueError("the SAE's cfg.json has no metadata.hook_name")
    return hook


def hook_layer(hook_name: str) -> int | None:
    match = re.match(r"blocks\.(\d+)\.", hook_name)
    return int(match.group(1)) if match else None


def resume_layer(hook_name: str, n_layers: int) -> int | None:
    """For a residual-stream hook, the block index where TransformerLens' forward returns that residual
    (`stop_at_layer`) and resumes from it (`start_at_layer`): L for blocks.L.hook_resid_pre, L + 1 for
    blocks.L.hook_resid_post. None for any other hook (one inside a block has no such seam)."""
    match = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|post)", hook_name)
    if match is None:
        return None
    layer = int(match[1]) + (match[2] == "post")
    return layer if layer <= n_layers else None
