"""The database schema: DDL file, version, and the meta keys every database carries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCHEMA_VERSION = "14"
# The fixed lengths of the latents table's arrays (contract/sql/schema.sql); the dashboards write exactly these.
HIST_BINS = 24
N_LOGITS = 10  # top and bottom logit tokens
N_NEIGHBORS = 10  # nearest latents by decoder cosine
LABEL_TOKENS = 5  # latent_labels: top tokens by activation mass kept per latent
# The large tables (a row per latent, context, word or token) name an SAE by its number (sae_numbers): a bound SAE
# key is looked up by this subquery, which DuckDB turns into a filter on the scan, so the row groups of other SAEs
# are skipped. Shared by the app's queries and the writer's.
SAE_NUM_OF_KEY = "(SELECT sae_num FROM sae_numbers WHERE sae_key = ?)"
# The task every absorption query reads when none is named: links and callers from before schema v10 meant it.
DEFAULT_TASK = "first_letter"
# latent_letter_cos stores cosines as SMALLINT multiples of 1 / COS_SCALE (steps of 0.005): a latent's cosine with a
# class's probe direction varies between the cross-fitted run's fold probes by a median SD of 0.0045 or more
# (bench/cosine_precision.py), so rounding to 0.005 (SD 0.0014) adds at most 5 % to that; thousandths cost 0.56 MB
# more on the demo.
COS_SCALE = 200
# latent_letter_cos holds a row per class and block of COS_BLOCK latents (a list each): a row per latent cost 8 bytes
# of list offsets a list, a third of the table; a block bounds what reading one latent's cosines decompresses.
COS_BLOCK = 4096
# The order a finished database keeps a table's rows in (precompute/storage/writer.compact_copy), where another than
# the order they were written in bit-packs better: measured on the demo, absorption_words 2.52 -> 2.39 MB and
# probe_words 1.38 -> 1.25 MB by the token ids, which the writers add class by class.
STORAGE_ORDER = {"absorption_words": "sae_num, task, metric, token_id", "probe_words": "probe_run_id, token_id"}
ACTIVATION_LEVELS = 15  # window activations are stored as 1..15 steps of the latent's max (4 bits bit-pack)


def activation_levels(values, max_act) -> np.ndarray:
    """round(ACTIVATION_LEVELS * value / max_act) clipped to 1..ACTIVATION_LEVELS, in float64 with numpy's
    half-to-even rounding: the writer's stored levels and the reader's derived context levels (window_acts leaves
    out a context's own token where this gives its level) agree exactly. A latent that never fired (max 0) counts
    as max 1."""
    value = np.asarray(values, np.float64)
    peak = np.asarray(max_act, np.float64)
    peak = np.where(peak > 0, peak, 1.0)
    return np.clip(np.rint(value / peak * ACTIVATION_LEVELS), 1, ACTIVATION_LEVELS).astype(np.uint8)


DDL_PATH = Path(__file__).parent / "sql" / "schema.sql"
REQUIRED_META_KEYS = ("schema_version", "code_version", "created_at", "models")


def ddl_statements() -> list[str]:
    """The DDL's statements, comments removed first (a comment may hold a ';'; the DDL has no string literals)."""
    text = "\n".join(line.split("--", 1)[0] for line in DDL_PATH.read_text().splitlines())
    return [statement.strip() for statement in text.split(";") if statement.strip()]


def schema_number(version: str | None) -> int | None:
    """A stored schema_version as a number (None when it is not one)."""
    return int(version) if version is not None and str(version).isdigit() else None


def is_newer_schema(version: str | None) -> bool:
    number = schema_number(version)
    return number is not None and number > int(SCHEMA_VERSION)


def newer_schema_message(path: Path | str, version: str) -> str:
    """What the app and every precompute command say of a database a newer release wrote: only a newer explorer can
    read it, and nothing here may rebuild or migrate it (that would destroy its newer results)."""
    return (f"{path} was written by a newer absorption-explorer (schema {version}): upgrade the explorer (this one "
            f"reads and writes schema {SCHEMA_VERSION})")


# The SAE a page shows when the URL names none (meta key): chosen by the build (`build --default-sae KEY`), else
# by default_sae_key; a database without the key gets the same rule from its saes table.
DEFAULT_SAE_META_KEY = "default_sae"


def default_sae_key(saes: list[tuple[str, str, int | None, int]]) -> str | None:
    """Of (key, hook, layer, d_sae) rows: the widest SAE at the hook with the most SAEs (ties: the earlier layer,
    then the first key)."""
    if not saes:
        return None
    counts: dict[str, int] = {}
    for _, hook, _, _ in saes:
        counts[hook] = counts.get(hook, 0) + 1
    layer_of = {hook: (layer if layer is not None else 10**6) for _, hook, layer, _ in saes}
    hook = min(counts, key=lambda h: (-counts[h], layer_of[h], h))
    return min((row for row in saes if row[1] == hook), key=lambda row: (-row[3], row[0]))[0]
