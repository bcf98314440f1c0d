"""Which function computed each stored number: the shortest way from a number on a page to its code.

A page names the column it shows (`provenance.help_for("sae_letters.mean_absorption_fraction")` in its help text), this
file names the function that computed the column's values, and that function is the third file: page → here → code.
Serializers (`precompute/absorption/tables.py`, `precompute/pipeline/job.py`) only copy values into rows and are not
named; a mean with an interval names the function that aggregates it, whose docstring names the per-word formula.
tests/contract/test_provenance.py imports every function named here and finds every column in the DDL.

No imports beyond the standard library: the explorer reads this without torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """`module:qualname` of the function that computed a column, and what it does, in a few words."""

    function: str  # e.g. "precompute.absorption.stats:fold_and_word_intervals"
    how: str = ""

    @property
    def module(self) -> str:
        return self.function.split(":", 1)[0]

    @property
    def qualname(self) -> str:
        return self.function.split(":", 1)[1]

    @property
    def location(self) -> str:
        """`precompute/absorption/stats.py:fold_and_word_intervals`: the file to open and the name to look for."""
        return f"{self.module.replace('.', '/')}.py:{self.qualname}"


DASHBOARD_STATS = Source("precompute.pipeline.dashboards:latent_stats", "over every token of the dashboard corpus")
RECONSTRUCTION = Source("precompute.pipeline.dashboards:StatsAccumulator.result", "over the dashboard corpus, float64")
FOLD_AND_WORD = Source("precompute.absorption.stats:fold_and_word_intervals",
                       "mean over words and folds; 95 % interval from a fold-then-word bootstrap")
CLASSIFIER_SCORES = Source("precompute.absorption.probe:classifier_scores", "on each word's out-of-fold probe logits")
SPLIT_LATENTS = Source("precompute.absorption.measure:combine_folds",
                       "the split set most folds chose (each fold: ksparse.k_sparse_by_rule)")
MAIN_LATENT = Source("precompute.absorption.measure:combine_folds",
                     "the main latent most folds chose (each fold: ksparse.main_latents, best encoder cosine)")
MAIN_SCORES = Source("precompute.absorption.measure:latent_as_classifier", "the main latent as a classifier, every word")
PROBE_COSINES = Source("precompute.absorption.measure:row_cosines", "unit decoder (encoder) rows · unit probe direction")
ABSORBER = Source("precompute.absorption.projection:dense_projection_absorption",
                  "top latents by code × cosine; the absorber is the first outside the split set (absorbing_latent)")
WORD_FRACTION = Source("precompute.absorption.projection:dense_projection_absorption",
                       "per word: absorber projection A against probe projection P and split projection M")
PAPER = Source("precompute.absorption.ablation:paper_absorption_from_top",
               "integrated-gradients ablation attributions of the sampled words (the paper's metric)")
TOKEN_LATENTS = Source("precompute.pipeline.token_stats:top_token_latents", "over every occurrence in running text")
TOKEN_LETTERS = Source("precompute.pipeline.token_stats:token_letters", "over every occurrence in running text")

COMPUTED_BY: dict[str, Source] = {
    # SAEs (the Overview cards, Compare's reconstruction chart)
    "saes.l0": RECONSTRUCTION,
    "saes.explained_variance": RECONSTRUCTION,
    "saes.mse": RECONSTRUCTION,
    "saes.n_dead": DASHBOARD_STATS,
    "saes.dead_fraction": DASHBOARD_STATS,
    # latents (the Latent page, Browse)
    "latents.density": DASHBOARD_STATS,
    "latents.max_act": DASHBOARD_STATS,
    "latents.mean_act": DASHBOARD_STATS,
    "latents.n_fired": DASHBOARD_STATS,
    "latents.hist_counts": DASHBOARD_STATS,
    "latents.top_logit_values": Source("precompute.pipeline.dashboards:logit_lens", "W_dec · W_U, top and bottom n"),
    "latents.neighbor_cosines": Source("precompute.pipeline.dashboards:decoder_neighbors", "unit decoder rows"),
    "latent_labels.label": Source("precompute.pipeline.labels:label_text", "top tokens by activation mass"),
    "latent_labels.top_token_shares": Source("precompute.pipeline.labels:latent_top_tokens", "share of the mass"),
    "latent_matches.cosine": Source("precompute.pipeline.matching:best_matches", "best unit decoder cosine"),
    "latent_scores.enc_dec_score": Source("precompute.pipeline.probe_free:enc_dec_scores", "1 − cos(encoder, decoder)"),
    "latent_scores.parent_score": Source("precompute.pipeline.probe_free:parent_scores", "best denser decoder cosine"),
    "score_validation.precision": Source("precompute.pipeline.probe_free:rank_statistics", "against stored absorbers"),
    "token_latents.fire_rate": TOKEN_LATENTS,
    "token_latents.mean_act": TOKEN_LATENTS,
    "token_letters.main_fire_rate": TOKEN_LETTERS,
    "token_letters.any_split_fire_rate": TOKEN_LETTERS,
    # a probe run's probes (the Feature page)
    "letter_probes.probe_f1": CLASSIFIER_SCORES,
    "letter_probes.probe_auc": Source("precompute.absorption.probe:letter_aucs", "on the out-of-fold probe logits"),
    "letter_probes.model_accuracy": Source("precompute.absorption.hook:model_check", "the model's own answer"),
    # per SAE and class (the Feature page, heatmaps)
    "sae_letters.mean_absorption_fraction": FOLD_AND_WORD,
    "sae_letters.full_absorption_rate": FOLD_AND_WORD,
    "sae_letters.paper_absorption_rate": FOLD_AND_WORD,
    "sae_letters.split_latents": SPLIT_LATENTS,
    "sae_letters.n_split": SPLIT_LATENTS,
    "sae_letters.split_stability": SPLIT_LATENTS,
    "sae_letters.main_latent": MAIN_LATENT,
    "sae_letters.main_f1": MAIN_SCORES,
    "sae_letter_k.f1": Source("precompute.absorption.ksparse:fit_k_sparse", "k-sparse probe on the top-k latents"),
    "sae_letter_folds.mean_absorption_fraction": Source("precompute.absorption.measure:measure_fold",
                                                        "one fold's words, no bootstrap"),
    "latent_letter_cos.decoder_cos": PROBE_COSINES,
    # per SAE (Overview, Compare)
    "sae_absorption.mean_absorption_fraction": FOLD_AND_WORD,
    "sae_absorption.full_absorption_rate": FOLD_AND_WORD,
    "sae_absorption.paper_absorption_rate": FOLD_AND_WORD,
    "sae_absorption.mean_probe_f1": CLASSIFIER_SCORES,
    "sae_absorption.mean_main_recall": MAIN_SCORES,
    "sae_absorption.mean_num_split_latents": SPLIT_LATENTS,
    "sae_absorption.fold_sd_absorption_fraction": Source("precompute.absorption.stats:between_fold_sd",
                                                         "SD of the folds' means"),
    # per word (the token page)
    "absorption_words.absorber": ABSORBER,
    "absorption_words.absorption_fraction": WORD_FRACTION,
    "absorption_words.is_full_absorption": WORD_FRACTION,
    "absorption_words.is_absorption": PAPER,
}


def source_of(column: str) -> Source:
    """The function behind `table.column`; KeyError for a column this file does not name (a test catches that)."""
    return COMPUTED_BY[column]


def help_for(*columns: str) -> str:
    """One line for a help tooltip: `Computed by precompute/…py:function (how).` for each distinct function."""
    seen: dict[str, Source] = {}
    for column in columns:
        source = source_of(column)
        seen.setdefault(source.function, source)
    return " ".join(f"Computed by `{s.location}`" + (f" ({s.how})." if s.how else ".") for s in seen.values())
