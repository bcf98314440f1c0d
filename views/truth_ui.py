"""The ground-truth panel of a toy run (backend/truth.py): shown only for an SAE on a toy model, whose true features
are in the database; every other SAE shows nothing of it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend import truth
from views import absorption_ui as ui
from views import reads

MODEL_CHECK_NOTE = ("not applicable: the toy model has no attention (its residual is the token's features), so it "
                    "cannot answer the prompt; the probe and the metrics read the residual alone")


def has_truth(sae_key: str) -> bool:
    return bool(reads.has_truth(sae_key))


def rate_text(rate: truth.Rate) -> str:
    if rate.value is None:
        return "—"
    return f"{rate.value:.2f} [{rate.low:.2f}, {rate.high:.2f}] ({rate.hits}/{rate.total})"


def verdict_row(v: truth.Verdicts) -> dict:
    return {"class": v.label, "precision [95% CI]": rate_text(v.precision), "recall [95% CI]": rate_text(v.recall),
            "words judged": v.n_words, "flagged & child present": v.true_pos, "flagged, no child": v.false_pos,
            "missed (child present)": v.false_neg}


def metrics_table(sae_key: str, task_name: str, classes: list[str] | None = None, key: str = "") -> None:
    """The projection metric's precision and recall against the truth, per class and pooled (only pooled when
    `classes` is None). key: tells the tables of several SAEs on one page apart."""
    verdicts = truth.verdicts(reads.truth_verdict_counts(sae_key, task_name))
    if not verdicts:
        st.info(f"No `{task_name}` words of this SAE are in the toy's ground truth.")
        return
    shown = [verdicts[c] for c in (classes or []) if c in verdicts] + [verdicts["all"]]
    st.dataframe(pd.DataFrame([verdict_row(v) for v in shown]), hide_index=True, width="stretch",
                 key=f"truth_metrics_{task_name}{key}")
    st.caption("The projection metric's absorption flag (absorption fraction > 0 or full absorption) on each word it "
               "judges (the probe's out-of-fold true positives) against the truth: the word holds a child of its "
               "parent. Intervals: Wilson 95 % over words.")


def latent_links(sae_key: str, task_name: str, latents: pd.Series) -> list[str]:
    return [ui.latent_url(sae_key, int(latent), task_name) for latent in latents]


def class_features(sae_key: str, task_name: str, cls: str) -> None:
    """The class's true features (its parent and children) and the latents that are them; which latents swallowed
    the parent."""
    latents = reads.truth_latents(sae_key)
    features = reads.truth_features(sae_key)
    mine = features[features["parent"] == cls]
    absorbing = truth.absorbing(latents)
    rows = []
    for _, f in mine.iterrows():
        matched = latents[latents["feature"] == f["name"]]
        swallowed = absorbing[absorbing["child"] == f["name"]] if f["role"] == "child" else absorbing[
            (absorbing["parent"] == f["name"]) & (absorbing["feature"] == f["name"])]
        for latent in sorted(set(matched["latent"]) | set(swallowed["latent"])) or [None]:
            row = latents[latents["latent"] == latent].iloc[0] if latent is not None else None
            rows.append({
                "true feature": f["name"], "role": f["role"],
                "latent": None if row is None else ui.latent_url(sae_key, int(latent), task_name),
                "decoder cos": None if row is None else float(row["feature_cos"] if row["feature"] == f["name"]
                                                              else row["child_cos"]),
                f"cos with {cls}": None if row is None else float(row["parent_cos"]),
                "absorbs the parent": latent is not None and latent in set(absorbing["latent"]),
            })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="truth_features",
                 column_config={"latent": st.column_config.LinkColumn("latent", display_text=r"latent=(\d+)"),
                                "decoder cos": st.column_config.NumberColumn(format="%.2f"),
                                f"cos with {cls}": st.column_config.NumberColumn(format="%.2f")})
    n_parent_latents = int(cls in truth.own_latent_features(latents))
    st.caption(f"Latents matched by decoder cosine with the true (unit) feature directions. An absorbing latent's "
               f"decoder is a child's and carries `{cls}` too (cosine ≥ {truth.ABSORBING_COS} with both): it fires for "
               f"`{cls}` whenever that child is present. "
               + ("No latent is `" + cls + "` alone: the parent is absorbed into its children entirely."
                  if n_parent_latents == 0 else ""))


def feature_panel(sae_key: str, task_name: str, cls: str) -> None:
    """The Feature page's panel: what is true of this class, and how the metrics did on it."""
    st.subheader("Ground truth (toy run)")
    st.caption("This SAE reads a toy model whose residual stream is a known world of features "
               "(precompute/toy/hierarchy.py): each word is a parent, at most one of its children and a filler. "
               "So absorption can be checked, not only measured.")
    metrics_table(sae_key, task_name, [cls])
    class_features(sae_key, task_name, cls)


def latent_panel(sae_key: str, latent: int, task_name: str) -> None:
    """The latent page's line: which true feature this latent is, and the parent it swallowed, if any."""
    latents = reads.truth_latents(sae_key)
    row = latents[latents["latent"] == latent]
    if row.empty:
        return
    st.subheader("Ground truth (toy run)")
    st.markdown(f"Latent {latent} is " + truth.latent_summary(row.iloc[0].to_dict()) + ".")
    parent = row.iloc[0]["parent"] if truth.absorbing(row).shape[0] else row.iloc[0]["feature_parent"]
    # the parent is a class of the toy's task, not of the page's (first_letter when the URL names none)
    task_of_parent = next((t.task for t in ui.tasks() if parent in t.classes), None) if isinstance(parent, str) else None
    if task_of_parent is not None:
        st.markdown(f"[Feature page of `{parent}` →]({ui.letter_url(sae_key, parent, task_of_parent)})")
