"""Typed rows of the tables written a row at a time (contract/sql/schema.sql), shared by the writer (precompute builds
them, `arrow_table` hands them to `insert_arrow`) and the app (`SaeRow.from_record` reads `saes` back). A field is a
column: its name and Python type agree with the DDL, which tests/contract/test_rows.py checks for every class here.
The per-latent and per-context tables stay columnar (numpy arrays straight into Arrow): a dataclass per row would
cost a Python object per latent.

An SAE is named by `sae_key`; the writer stores its number (`sae_num`) where the table says so."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa

# The Arrow type each field type travels as; DuckDB casts it to the column's declared type on insert
# (an int to SMALLINT, a float to REAL), so a row class names the Python type only.
ARROW_OF_PYTHON: dict[Any, pa.DataType] = {
    str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(), datetime: pa.timestamp("us"),
}


@cache  # read on every page render (SaeRow.from_record); a class's hints never change
def field_types(row_type: type) -> dict[str, tuple[Any, bool]]:
    """Per field of a row class: its Python type (list[int] for a list) and whether it may be None."""
    out = {}
    for name, hint in typing.get_type_hints(row_type).items():
        if typing.get_origin(hint) is ClassVar:
            continue
        nullable = False
        if isinstance(hint, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            nullable, hint = True, args[0]
        out[name] = (hint, nullable)
    return out


def arrow_type(hint: Any) -> pa.DataType:
    if typing.get_origin(hint) is list:
        return pa.list_(ARROW_OF_PYTHON[typing.get_args(hint)[0]])
    return ARROW_OF_PYTHON[hint]


def arrow_schema(row_type: type) -> pa.Schema:
    return pa.schema([pa.field(name, arrow_type(hint), nullable)
                      for name, (hint, nullable) in field_types(row_type).items()])


def arrow_table(rows: Sequence[Any], row_type: type) -> pa.Table:
    """Rows of one class as the Arrow table the writer inserts (typed even when `rows` is empty)."""
    return pa.Table.from_pylist([asdict(row) for row in rows], schema=arrow_schema(row_type))


def plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as plain Python values: NaN/NA become None, numpy scalars and arrays become Python ones."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "tolist") and not isinstance(value, pd.Timestamp):
            value = value.tolist()
        if value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
            value = None
        out[key] = value
    return out


@dataclass(frozen=True)
class SaeRow:
    """One SAE of the database (`saes`): where it comes from and its reconstruction stats on the dashboard corpus."""

    TABLE: ClassVar[str] = "saes"
    sae_key: str
    model_name: str
    hook_name: str
    layer: int | None
    architecture: str  # inference architecture (cfg.json)
    training_architecture: str  # e.g. batchtopk, which sae-lens saves as jumprelu
    d_in: int
    d_sae: int
    source: str  # 'local' | 'release'
    path: str | None
    release: str | None
    sae_id: str | None
    corpus: str
    n_tokens: int
    explained_variance: float
    mse: float
    l0: float
    n_dead: int
    dead_fraction: float
    context_left: int
    context_right: int
    hist_bins: int
    created_at: datetime

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SaeRow:
        """A row as the app reads it (a DataFrame record: numpy scalars, NaN for NULL)."""
        types_ = field_types(cls)
        values = plain_row({name: record[name] for name in types_})
        for name, (hint, _) in types_.items():
            if values[name] is None:
                continue
            if hint in (int, float):  # an INTEGER column with a NULL arrives as a float
                values[name] = hint(values[name])
            elif hint is datetime:
                values[name] = pd.Timestamp(values[name]).to_pydatetime()
        return cls(**values)

    @property
    def origin(self) -> str:
        """Where its weights come from: the local folder, or the sae-lens release and id."""
        return (self.path or "") if self.source == "local" else f"{self.release} / {self.sae_id}"


# --- probe runs: one per (model, hook, task, config), shared by every SAE measured against it -------------------

@dataclass(frozen=True)
class ProbeRunRow:
    TABLE: ClassVar[str] = "probe_runs"
    probe_run_id: str
    model_name: str
    hook_name: str
    task: str
    config: str  # JSON of AbsorptionConfig
    split_mode: str
    n_folds: int
    n_words: int
    n_train: int
    n_test: int
    n_dropped: int
    prompt_template: str
    seconds: str  # JSON: time per stage
    created_at: datetime


@dataclass(frozen=True)
class ClassProbeRow:
    """A class's probe on all words, its out-of-fold scores and the neuron and PCA baselines (`letter_probes`)."""

    TABLE: ClassVar[str] = "letter_probes"
    probe_run_id: str
    model_name: str
    hook_name: str
    task: str
    letter: str  # the class
    weight: list[float]
    bias: float
    n_train: int
    n_test: int
    probe_precision: float
    probe_recall: float
    probe_f1: float
    probe_auc: float | None
    probe_stability: float
    fold_direction_cos: float | None
    n_probe_true_positives: int
    model_accuracy: float
    model_checked: int
    neuron: int
    neuron_sign: int
    neuron_precision: float
    neuron_recall: float
    neuron_f1: float
    pca_component: int
    pca_sign: int
    pca_precision: float
    pca_recall: float
    pca_f1: float


@dataclass(frozen=True)
class ProbeFoldRow:
    """One fold's probe for one class (`probe_folds`)."""

    TABLE: ClassVar[str] = "probe_folds"
    probe_run_id: str
    task: str
    fold: int
    letter: str
    weight: list[float]
    bias: float
    n_words: int
    n_probe_true_positives: int


# --- one SAE measured on one task against one probe run --------------------------------------------------------

@dataclass(frozen=True)
class SaeAbsorptionRow:
    """The SAE's headline numbers on a task (`sae_absorption`); None where a metric was not run."""

    TABLE: ClassVar[str] = "sae_absorption"
    sae_key: str
    task: str
    probe_run_id: str
    hook_name: str
    n_letters: int
    mean_absorption_fraction: float | None
    mean_absorption_fraction_low: float | None
    mean_absorption_fraction_high: float | None
    std_absorption_fraction: float | None
    full_absorption_rate: float | None
    full_absorption_rate_low: float | None
    full_absorption_rate_high: float | None
    std_full_absorption: float | None
    paper_absorption_rate: float | None
    paper_absorption_rate_low: float | None
    paper_absorption_rate_high: float | None
    std_paper_absorption: float | None
    mean_num_split_latents: float | None
    std_num_split_latents: float | None
    mean_main_precision: float | None
    mean_main_recall: float | None
    mean_main_f1: float | None
    mean_probe_f1: float | None
    split_mode: str
    n_folds: int
    fold_sd_absorption_fraction: float | None
    fold_sd_full_absorption: float | None
    fold_sd_paper_absorption: float | None
    n_unstable_letters: int
    split_rule: str
    other_rule: str | None
    other_absorption_fraction: float | None
    other_absorption_fraction_low: float | None
    other_absorption_fraction_high: float | None
    other_full_absorption_rate: float | None
    other_full_absorption_rate_low: float | None
    other_full_absorption_rate_high: float | None
    n_rule_changed_letters: int | None
    n_main_outside_split: int | None
    config: str
    seconds: str
    created_at: datetime


@dataclass(frozen=True)
class SaeClassRow:
    """One class of the task in one SAE: its latents, their stability over folds, and its metrics (`sae_letters`)."""

    TABLE: ClassVar[str] = "sae_letters"
    sae_key: str
    task: str
    probe_run_id: str
    letter: str
    included: bool
    split_latents: list[int]
    n_split: int
    split_stability: float
    main_latent: int
    main_encoder_cos: float
    main_stability: float
    main_precision: float
    main_recall: float
    main_f1: float
    main_in_split: bool
    best_latent: int
    best_precision: float
    best_recall: float
    best_f1: float
    n_probe_true_positives: int
    mean_absorption_fraction: float | None
    absorption_fraction_low: float | None
    absorption_fraction_high: float | None
    full_absorption_rate: float | None
    full_absorption_rate_low: float | None
    full_absorption_rate_high: float | None
    n_full_absorption: int
    paper_absorption_rate: float | None
    paper_absorption_rate_low: float | None
    paper_absorption_rate_high: float | None
    n_candidates: int
    n_sampled: int
    n_paper_absorption: int
    other_split_latents: list[int] | None
    other_absorption_fraction: float | None
    other_full_absorption_rate: float | None


@dataclass(frozen=True)
class SaeClassFoldRow:
    """A class's split latents and metrics on one fold's words (`sae_letter_folds`)."""

    TABLE: ClassVar[str] = "sae_letter_folds"
    sae_key: str
    task: str
    probe_run_id: str
    letter: str
    fold: int
    split_latents: list[int]
    main_latent: int
    main_f1: float
    n_probe_true_positives: int
    mean_absorption_fraction: float | None
    full_absorption_rate: float | None
    paper_absorption_rate: float | None
    n_candidates: int
    n_sampled: int
    other_split_latents: list[int] | None


@dataclass(frozen=True)
class SaeClassKRow:
    """One k of k-sparse probing on one fold (`sae_letter_k`)."""

    TABLE: ClassVar[str] = "sae_letter_k"
    sae_key: str
    task: str
    probe_run_id: str
    letter: str
    fold: int
    k: int
    latents: list[int]
    weights: list[float]
    bias: float
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class AbsorptionWordRow:
    """A measured word with absorption (projection metric) or a sampled candidate (ablation metric)."""

    TABLE: ClassVar[str] = "absorption_words"
    sae_key: str
    task: str
    probe_run_id: str
    metric: str  # 'projection' | 'ablation'
    letter: str
    token_id: int
    fold: int
    probe_projection: float
    absorption_fraction: float | None  # projection rows
    is_full_absorption: bool | None  # projection rows
    is_absorption: bool | None  # ablation rows
    absorber: int | None
    absorber_act: float | None
    absorber_score: float | None


@dataclass(frozen=True)
class AbsorptionSplitActRow:
    """A non-zero activation of a split latent (its 1-based place in the word's fold's split latents) on a word of
    absorption_words."""

    TABLE: ClassVar[str] = "absorption_split_acts"
    sae_key: str
    task: str
    token_id: int
    split_index: int
    act: float


# --- the toy run's ground truth (precompute/toy/) --------------------------------------------------------------

@dataclass(frozen=True)
class TruthFeatureRow:
    """A true feature of the toy world (`truth_features`)."""

    TABLE: ClassVar[str] = "truth_features"
    model_name: str
    feature: int  # row of the toy's feature dictionary
    name: str
    role: str  # 'parent' | 'child' | 'filler'
    parent: str | None  # its class; None: a filler


@dataclass(frozen=True)
class TruthWordRow:
    """A toy token's true features (`truth_words`)."""

    TABLE: ClassVar[str] = "truth_words"
    model_name: str
    token_id: int
    parent: str | None
    child: str | None
    filler: str | None
    absorbable: bool  # a child is present: the parent may be absorbed into the child's latent


ROW_TYPES: tuple[type, ...] = (SaeRow, ProbeRunRow, ClassProbeRow, ProbeFoldRow, SaeAbsorptionRow, SaeClassRow,
                               SaeClassFoldRow, SaeClassKRow, AbsorptionWordRow, TruthFeatureRow, TruthWordRow)
