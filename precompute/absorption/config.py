"""The absorption measurement's configuration: every default of both reference metrics (SAEBench's projection metric and
the paper's ablation metric), plus how we run them (cross-fitting or SAEBench's holdout split, word subsample, prompts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from contract.vocabulary import MIN_PROBE_F1
from precompute.absorption import ablation as abl
from precompute.absorption import ksparse as ks
from precompute.absorption import probe as pr
from precompute.absorption.projection import ProjectionMetricConfig
from precompute.absorption.stats import BootstrapConfig
from precompute.absorption.tasks import FIRST_LETTER, get_task
from precompute.absorption.vocab import PromptConfig, prompt_config_for

SPLIT_MODES = ("crossfit", "holdout")


TRAINING_ONLY = -1  # fold of a holdout-mode probe-training word: never measured


@dataclass(frozen=True)
class AbsorptionConfig:
    """Every default of both reference metrics, plus how we run them. See
    ../shared/reference/absorption-metrics.md for the definitions."""
    prompts: PromptConfig = field(default_factory=PromptConfig)
    probe: pr.ProbeConfig = field(default_factory=pr.ProbeConfig)
    sparse_probe: pr.SparseProbeConfig = field(default_factory=pr.SparseProbeConfig)
    k_sparse: ks.KSparseConfig = field(default_factory=ks.KSparseConfig)
    projection: ProjectionMetricConfig = field(default_factory=ProjectionMetricConfig)
    ablation: abl.AblationMetricConfig = field(default_factory=abl.AblationMetricConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    max_words: int | None = None  # None: the whole alphabetic vocabulary (as SAEBench); else a seeded subset
    share_prefix: bool = True  # one sampled in-context prefix per group of words, its keys/values cached
    prefix_group_size: int = 512  # words per shared prefix (share_prefix only)
    batch_size: int = 128  # words per model call
    model_check_per_letter: int = 50  # test words per letter on which the model's own answer is checked
    min_probe_f1: float = MIN_PROBE_F1  # letters with probe F1 <= this are left out of the headline means (SAEBench)
    run_ablation_metric: bool = True  # the paper's metric needs gradients through the model (slowest part)
    # "crossfit": the words fall into n_folds seeded folds; each fold is measured against a probe (and split
    # latents) fitted on the other folds, so every word of the vocabulary gets an out-of-fold verdict.
    # "holdout": SAEBench's protocol, one probe on 1 - test_fraction of the words, the rest measured.
    split_mode: str = "crossfit"
    n_folds: int = 5
    # the task (precompute/absorption/tasks.py) whose classes are measured; `prompts` asks for its classes
    # (config_for_task sets both)
    task: str = FIRST_LETTER.name

    def __post_init__(self) -> None:
        task = get_task(self.task)
        if (self.prompts.classes, self.prompts.answers) != (task.classes, task.answers):
            raise ValueError(f"prompts ask for other classes than task {self.task!r}: use config_for_task")
        if self.split_mode not in SPLIT_MODES:
            raise ValueError(f"split_mode must be one of {SPLIT_MODES}, not {self.split_mode!r}")
        if self.split_mode == "crossfit" and self.n_folds < 2:
            raise ValueError("crossfit needs n_folds >= 2")

    @property
    def n_classes(self) -> int:
        return len(self.prompts.classes)

    @property
    def fold_count(self) -> int:
        """Folds that are measured: n_folds, or the one held-out fold."""
        return self.n_folds if self.split_mode == "crossfit" else 1


def config_for_task(config: AbsorptionConfig, task_name: str) -> AbsorptionConfig:
    """`config` measuring `task_name`: its classes, answers and prompt template, every other setting kept."""
    from dataclasses import replace

    task = get_task(task_name)
    return replace(config, task=task.name, prompts=prompt_config_for(task, config.prompts))
