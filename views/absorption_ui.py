"""Shared pieces of the absorption views: cached queries, the explainer, caveats, links and formats.

Not a page (it is not registered in app.py); the letter, token, latent and overview pages import it."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import verdicts
from backend.database import TaskInfo, plain_row
from backend.params import LETTERS, ParamError, parse_task
from contract import provenance
from contract.rows import SaeRow
from contract.schema import DEFAULT_TASK
from contract.vocabulary import (  # noqa: F401  (MIN_PROBE_F1: the pages read ui.MIN_PROBE_F1)
    MIN_PROBE_F1,
    SAEBENCH_SPLIT_RULE,
    method_band,
)
from views import common, reads

MIN_STABILITY = 0.7  # below this the two half-data probes disagree: the letter's direction is unreliable
SPLIT_COLOR = "rgb(31,119,180)"
ABSORBER_COLOR = "rgb(214,39,40)"
MAIN_COLOR = "rgb(44,160,44)"
OTHER_COLOR = "rgba(150,150,150,0.35)"

EXPLAINER = """
**Feature splitting.** For each letter a sparse logistic probe is trained on the SAE's latents; the
top-k latents by positive weight are refit for k = 1, 2, …, and k grows while the F1 on held-out
words improves by more than τ = 0.03. The accepted latents are the letter's *split latents* (their
number is reported as SAEBench does, all of them). The *main latent* is the one whose encoder row is
closest (cosine) to the probe direction.

**Absorption.** A "starts with S" latent should fire on every S-word. Often it stays silent on some
(" short") because another latent — one for that word or a group of words — fires instead and its
decoder direction carries part of the "S" direction: that latent has *absorbed* the letter.
Absorption is measured on words the ground-truth linear probe gets right, each scored by a probe that never
saw it: every word in a cross-fitted build (5 folds), the 20 % test words in a holdout (80/20) build.

**Projection metric (SAEBench).** For each word, P is the activation's projection on the unit probe
direction, and each latent contributes (activation × decoder cosine with the probe). The absorption
fraction is the share of P carried by non-split latents (cosine ≥ 0.1, top 3) rather than by the
split latents; it is 0 when the split latents already explain P or the others carry < 40 % of it.
*Full absorption*: every split latent is silent and one latent (cosine ≥ 0.025) carries ≥ 40 % of P.

**Ablation metric (paper, Chanin et al.).** Candidates are words the probe gets right but the
k-sparse probe misses, with the split latents silent (at most 200 sampled). Integrated-gradients
attribution of each latent on the model's own first-letter logit difference; a word is absorbed when
the most negative attribution beats the second by ≥ 1 and that latent's decoder cosine with the
probe is ≥ 0.025. The rate is scaled by the sampling proportion and divided by the probe's true positives.

**Intervals** are 95 % bootstrap intervals, resampling words (within each letter for the SAE means).
"""

# Models below SAEBench's advice (≥ 1B parameters), with their size in words: the caveat is shown only for these.
SMALL_MODELS = {"smollm2-135m-embedded": "135M-parameter"}
ADVISED_WIDTH = 16384  # SAEBench advises SAEs of at least this many latents


def has_absorption(sae_key: str, task: str | None = None) -> bool:
    """Whether the SAE has absorption results on `task` (any task when None)."""
    return bool(reads.has_absorption(sae_key, task))


# --- tasks (schema v10: every absorption result belongs to a task; `letter` columns hold its class) ----------
# A database whose `tasks` table is empty (no absorption stage yet) still reads as first_letter, the default.
FALLBACK_TASK = TaskInfo(DEFAULT_TASK, "First letter", "The word's first letter.", tuple(LETTERS), (), "", 0)


def tasks() -> list[TaskInfo]:
    """The database's tasks, first_letter first (the fallback first_letter when it has none)."""
    return reads.tasks() or [FALLBACK_TASK]


def task_info(name: str) -> TaskInfo:
    return next((task for task in tasks() if task.task == name), FALLBACK_TASK)


def current_task() -> TaskInfo:
    """The task named by `?task=` (first_letter when absent); stops with a message listing the tasks when unknown."""
    try:
        name = parse_task(st.query_params.get("task"), [task.task for task in tasks()])
    except ParamError as error:
        common.show_param_error(error)
    return task_info(name)


def class_param(task: str) -> str:
    """The URL parameter links name a class by: `letter` for first_letter (as every link before tasks did), else
    `class`. The Feature page reads either for any task."""
    return "letter" if task == DEFAULT_TASK else "class"


def class_params(task: str, value: str) -> dict[str, str]:
    """Query parameters naming a class of a task (for page links to the Feature page)."""
    return {"task": task, class_param(task): value}


def task_params(task: str) -> dict[str, str]:
    """`task` for links between list pages: absent for the default, so links without tasks keep their shape."""
    return {} if task == DEFAULT_TASK else {"task": task}


def task_heading(task: TaskInfo) -> str:
    """“First-letter absorption”, or the task's title."""
    return "First-letter absorption" if task.is_letters else f"Absorption: {task.title}"


def explainer() -> None:
    with st.expander("How this is computed", expanded=False):
        st.markdown(EXPLAINER)


def caveat_text(saes: list[SaeRow]) -> str | None:
    """The small-model warning for these SAEs (the page's one, or every SAE of a page about all of them), naming
    their model and widths; None when none of them reads a small model (a toy world, or a release's model)."""
    small = [sae for sae in saes if sae.model_name in SMALL_MODELS]
    if not small:
        return None
    models = sorted({sae.model_name for sae in small})
    widths = sorted({int(sae.d_sae) for sae in small})
    width = f"{widths[0]:,}" if len(widths) == 1 else f"{widths[0]:,}–{widths[-1]:,}"
    size = SMALL_MODELS[models[0]] if len(models) == 1 else "small"
    model = f"a {size} model (`{', '.join(models)}`)"
    which = (f"This SAE has {width} latents and reads {model}" if len(saes) == 1
             else f"{len(small)} of these SAEs ({width} latents) read {model}")
    return (f"{which}: absorption numbers from models and SAEs this small are noisier than the published Gemma-2-2B / "
            f"Gemma Scope results (SAEBench advises models of ≥ 1B parameters and SAEs of ≥ {ADVISED_WIDTH // 1024}k "
            "latents). Read every number with its interval.")


def caveat(sae: SaeRow | None = None) -> None:
    """The small-model warning as a caption on an absorption view: for the page's SAE, or (None) for every SAE of a
    page about all of them; nothing where it does not apply."""
    saes = [sae] if sae is not None else [SaeRow.from_record(r) for r in common.saes_frame().to_dict("records")]
    text = caveat_text(saes)
    if text is not None:
        st.caption(f":material/warning: {text}")


def no_absorption_message(sae_key: str, task: TaskInfo | None = None) -> None:
    """No results for the SAE (on `task`, or on any task when None); names the tasks it does have."""
    measured = reads.sae_tasks(sae_key) if task is not None else []
    if task is not None and measured:
        titles = ", ".join(f"{task_info(name).title} (`{name}`)" for name in measured)
        st.info(f"SAE `{sae_key}` has no absorption measurements on the task {task.title} (`{task.task}`); it was "
                f"measured on: {titles}. Pick one of those above, or another SAE in the sidebar.")
        return
    st.info(f"This database holds no absorption measurements for SAE `{sae_key}`. Build them with "
            "`python -m precompute build` (absorption stage) or pick another SAE in the sidebar.")


def interval(value: float | None, low: float | None, high: float | None, fmt: str = ".3f") -> str:
    """`0.123 [0.100, 0.150]`, or `—` when the value was not measured."""
    if value is None:
        return "—"
    if low is None or high is None:
        return format(value, fmt)
    return f"{value:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def ci_text(low: float | None, high: float | None, fmt: str = ".3f") -> str:
    return "no interval" if low is None or high is None else f"95% CI [{low:{fmt}}, {high:{fmt}}]"


def overview_url(sae_key: str, task: str = DEFAULT_TASK) -> str:
    return "./overview?" + urlencode({"sae": sae_key, **task_params(task)})


def latent_url(sae_key: str, latent: int, task: str = DEFAULT_TASK) -> str:
    """A latent's page; from a task's view it opens on that task (its cosine profile)."""
    return "./latent?" + urlencode({"sae": sae_key, "latent": int(latent), **task_params(task)})


def letter_url(sae_key: str, letter: str, task: str = DEFAULT_TASK) -> str:
    """The Feature page of one class of a task."""
    return "./letter?" + urlencode({"sae": sae_key, **class_params(task, letter)})


def token_url(sae_key: str, word: str) -> str:
    return "./token?" + urlencode({"sae": sae_key, "token": word.strip()})


def spell_url(sae_key: str, word: str, task: str = DEFAULT_TASK) -> str:
    """The spelling check on /live: the task's prompt for the word, with its absorber, main latent and a control
    ablated."""
    return "./live?" + urlencode({"sae": sae_key, "spell": word.strip(), **task_params(task)})


# The headline columns of the per-SAE absorption tables (Overview, Compare): where each number is computed.
HEADLINE_SOURCES = {"mean absorption fraction": "sae_absorption.mean_absorption_fraction",
                    "full-absorption rate": "sae_absorption.full_absorption_rate",
                    "paper absorption rate": "sae_absorption.paper_absorption_rate",
                    "probe F1": "sae_absorption.mean_probe_f1", "main latent R": "sae_absorption.mean_main_recall",
                    "mean split latents": "sae_absorption.mean_num_split_latents",
                    "between-fold SD": "sae_absorption.fold_sd_absorption_fraction",
                    "explained variance": "saes.explained_variance", "L0": "saes.l0", "dead fraction": "saes.dead_fraction"}


def headline_columns(config: dict, columns) -> dict:
    """`config` (a dataframe's column_config) with each headline column's help naming the function that computed it;
    a column already configured keeps its format."""
    out = dict(config)
    for name in columns:
        if name not in HEADLINE_SOURCES:
            continue
        help_text = provenance.help_for(HEADLINE_SOURCES[name])
        given = out.get(name)
        if isinstance(given, dict):  # a Streamlit column config is a dict underneath
            out[name] = {**given, "help": help_text}
        else:
            out[name] = st.column_config.Column(name, help=help_text)
    return out


STEER_PROMPT = "My favourite thing about it is"  # a neutral opening the steered latent can colour


def steer_alpha(max_act: float) -> float:
    """The Latent page's default steering strength: twice the latent's corpus maximum (its own activation units),
    at least 1; strong enough to show in 20 tokens of a 135M model, weak enough to stay text."""
    return max(1.0, round(2 * max_act, 1))


def steer_params(sae_key: str, latent: int, alpha: float, text: str = STEER_PROMPT) -> dict[str, str]:
    """/live's parameters continuing `text` with and without α × the latent's decoder row added at every token."""
    return {"sae": sae_key, "text": text, "latent": str(latent), "steer": f"{latent}:{alpha:g}"}


def probe_run_note(sae: SaeRow, letter: str | None = None, task: str = DEFAULT_TASK) -> None:
    """Which probe run the SAE's numbers on the task were measured against and, where the hook holds several runs
    of the task (builds with other absorption configs), the others with the SAEs measured against each."""
    summary = reads.sae_absorption(sae.sae_key, task)
    if summary is None:
        return
    run_id = summary["probe_run_id"]
    run = reads.probe_run(run_id)
    words = f" · {run['n_words']:,} words ({run['n_train']:,} train / {run['n_test']:,} test)" if run else ""
    st.caption(f"Measured against probe run `{run_id}`{words}.", help=PROBE_RUN_HELP)
    runs = records(reads.hook_probe_runs(sae.model_name, sae.hook_name, task))
    others = [r for r in runs if r["probe_run_id"] != run_id and r["sae_keys"]]
    if others:
        with st.expander(f"{len(others)} other probe run(s) at `{sae.hook_name}`: not comparable with these numbers"):
            for other in others:
                links = ", ".join(f"[{key}]({letter_url(key, letter, task) if letter else overview_url(key)})"
                                  for key in other["sae_keys"])
                st.markdown(f"`{other['probe_run_id']}` · {other['n_words']:,} words · measured: {links}")


PROBE_RUN_HELP = ("A probe run is the shared per-hook part of the measurement: the word list and its train/test split, "
                  "the prompts and the trained letter probe. Its id is a hash of the config, the words and the probe "
                  "weights; SAEs measured against different runs are not directly comparable.")


def letter_unreliable(row: dict, noun: str = "letter") -> str | None:
    """Why a class's numbers should not be trusted (probe F1 or stability), or None."""
    reasons = []
    f1, stability = row.get("probe_f1"), row.get("probe_stability")
    if f1 is not None and f1 <= MIN_PROBE_F1:
        reasons.append(f"probe F1 {f1:.2f} ≤ {MIN_PROBE_F1}")
    if stability is not None and stability < MIN_STABILITY:
        reasons.append(f"probe stability {stability:.2f} < {MIN_STABILITY} (probes fitted on two halves of "
                       "the training words disagree)")
    if not reasons:
        return None
    excluded = ("excluded from the SAE's headline means" if not row.get("included")
                else f"still counted in the headline means (only probe F1 ≤ {MIN_PROBE_F1} excludes a {noun})")
    return f"Unstable/unreliable {noun}: {'; '.join(reasons)}; {excluded}."


def show_error(message: str) -> None:
    st.error(message)
    st.stop()


def records(frame) -> list[dict]:
    """A frame's rows as plain dicts (NA/NaN as None, arrays as lists), safe to test with `if`. Read column by
    column: pandas' to_dict("records") reads Arrow-backed frames cell by cell (ms per small frame, and the
    token page makes one per SAE)."""
    if not frame.columns.is_unique:
        return [plain_row(r) for r in frame.to_dict("records")]
    columns = list(frame.columns)
    values = [frame[column].tolist() for column in columns]
    return [plain_row(dict(zip(columns, row))) for row in zip(*values)]


def architecture_label(training: str | None, inference: str | None) -> str:
    """How the SAE was trained, and the saved form when it differs (BatchTopK is saved as JumpReLU)."""
    if not training or training == inference:
        return inference or "?"
    return f"{training} (saved as {inference})"


def selected_points(event) -> list[dict]:
    """The points of a plotly_chart(on_select="rerun") event, or [] when nothing is selected."""
    if isinstance(event, dict):
        return event.get("selection", {}).get("points", []) or []
    return list(getattr(getattr(event, "selection", None), "points", None) or [])


def fmt(value, spec: str = ".3f") -> str:
    return "—" if value is None or pd.isna(value) else format(float(value), spec)


def letter_heatmap(letters: pd.DataFrame, sae_order: list[str], saes_as_columns: bool = False,
                   letters_upper: bool = True) -> go.Figure:
    """Mean absorption fraction per (SAE, class), excluded classes greyed. Rows = SAEs and columns =
    classes, or transposed (saes_as_columns) when many SAEs are compared. Cells are clickable: each
    carries [sae_key, class] as customdata (see picked_cell). letters_upper: the classes are letters, shown
    upper-case (first_letter); other tasks' classes are shown as stored."""
    show = str.upper if letters_upper else str
    noun = "letter" if letters_upper else "class"
    grid = letters.pivot(index="sae_key", columns="letter", values="mean_absorption_fraction").reindex(sae_order)
    included = letters.pivot(index="sae_key", columns="letter", values="included").reindex(sae_order)
    included = included.fillna(False).astype(bool)
    probe_f1 = letters.pivot(index="sae_key", columns="letter", values="probe_f1").reindex(sae_order)
    stability = (letters.pivot(index="sae_key", columns="letter", values="split_stability").reindex(sae_order)
                 if "split_stability" in letters.columns else None)
    # Invisible markers on every cell carry the hover text and make cells clickable (Streamlit's chart
    # selection reports points of scatter traces, not heatmap cells).
    cells = [(sae_key, letter) for sae_key in grid.index for letter in grid.columns]
    hover = [f"{sae_key}<br>{noun} {show(letter)}: {fmt(grid.loc[sae_key, letter])}<br>probe F1 "
             f"{fmt(probe_f1.loc[sae_key, letter], '.2f')}"
             + ("" if included.loc[sae_key, letter] else f"<br>excluded: probe F1 ≤ {MIN_PROBE_F1}")
             + (f"<br>† split latents change between folds ({stability.loc[sae_key, letter]:.0%} agree)"
                if is_unstable(stability, sae_key, letter) else "")
             for sae_key, letter in cells]
    unstable = [[is_unstable(stability, sae_key, letter) for letter in grid.columns] for sae_key in grid.index]
    if saes_as_columns:
        grid, included = grid.T, included.T
        unstable = [list(column) for column in zip(*unstable)]
        x, y = list(grid.columns), [show(letter) for letter in grid.index]
        cell_x, cell_y = [sae_key for sae_key, _ in cells], [show(letter) for _, letter in cells]
    else:
        x, y = [show(letter) for letter in grid.columns], list(grid.index)
        cell_x, cell_y = [show(letter) for _, letter in cells], [sae_key for sae_key, _ in cells]
    kept = grid.where(included)
    excluded = included.map(lambda kept_letter: float("nan") if kept_letter else 1.0)
    fig = go.Figure()
    # Cell text in percent without the sign (the colour bar says %), so 26 letters still fit a 1024 px window.
    marked = [["" if pd.isna(value) else f"{value * 100:.0f}" + ("†" if flag else "") for value, flag in zip(values, row)]
              for values, row in zip(kept.values, unstable)]
    fig.add_trace(go.Heatmap(z=kept.values, x=x, y=y, colorscale="Reds", zmin=0, zmax=1,
                             text=marked, texttemplate="%{text}", textfont=dict(size=9),
                             colorbar=dict(title=dict(text="mean absorption fraction (%)", side="top"),
                                           tickformat=".0%", orientation="h", y=-0.02, yanchor="top", len=0.6,
                                           thickness=12), xgap=1, ygap=1, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=excluded.values, x=x, y=y, colorscale=[[0, "#ddd"], [1, "#ddd"]],
                             showscale=False, xgap=1, ygap=1,
                             text=[["" if kept_letter else "ex" for kept_letter in row] for row in included.values],
                             textfont=dict(size=9, color="#666"),
                             texttemplate="%{text}", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=cell_x, y=cell_y, mode="markers", customdata=[[k, letter] for k, letter in cells],
                             marker=dict(size=18 if saes_as_columns else 26, symbol="square",
                                         color="rgba(255,255,255,0.01)"),
                             hovertext=hover, hoverinfo="text", showlegend=False))
    height = (120 + 24 * len(y) if saes_as_columns else 140 + 40 * len(y)) + 50  # + the colour bar below
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=60), showlegend=False,
                      hovermode="closest", xaxis=dict(side="top", type="category", dtick=1),
                      yaxis=dict(autorange="reversed", type="category"))
    return fig


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_letter_heatmap(letters: pd.DataFrame, sae_order: list[str], saes_as_columns: bool = False,
                          letters_upper: bool = True) -> go.Figure:
    """letter_heatmap built once per (classes, SAEs): its per-cell hover text costs hundreds of ms for a page
    of SAEs. A resource, not data: a pickled Figure is validated again on every load; pages only read it."""
    return letter_heatmap(letters, sae_order, saes_as_columns, letters_upper)


def picked_cell(event) -> tuple[str, str] | None:
    """(sae_key, class) of a clicked letter_heatmap cell, if any (classes are stored lower-case)."""
    for point in selected_points(event):
        data = point.get("customdata")
        if isinstance(data, (list, tuple)) and len(data) == 2:
            return str(data[0]), str(data[1]).lower()
    return None


# --- folds (cross-fitting) -----------------------------------------------------------------------
def latent_list(latents) -> str:
    return ", ".join(str(int(x)) for x in latents) or "none"


def fold_table(folds: pd.DataFrame) -> pd.DataFrame:
    """One display row per fold: what it selected and its numbers on its own words."""
    return pd.DataFrame([{
        "fold": int(f["fold"]), "split latents": latent_list(f["split_latents"]), "main latent": int(f["main_latent"]),
        "main latent F1": f["main_f1"], "probe true positives": int(f["n_probe_true_positives"]),
        "absorption fraction": f["mean_absorption_fraction"], "full-absorption rate": f["full_absorption_rate"],
        "paper absorption rate": f["paper_absorption_rate"], "paper metric sampled": int(f["n_sampled"]),
    } for f in records(folds)])


def selection_counts(folds: pd.DataFrame, column: str) -> dict[int, int]:
    """Latent -> number of folds whose `column` (split_latents, or main_latent) holds it, most selected first."""
    counts: dict[int, int] = {}
    for value in folds[column]:
        for latent in (value if column == "split_latents" else [value]):
            counts[int(latent)] = counts.get(int(latent), 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def selection_text(folds: pd.DataFrame) -> str:
    n = len(folds)
    split = "; ".join(f"{latent} in {count}/{n}" for latent, count in selection_counts(folds, "split_latents").items())
    main = "; ".join(f"{latent} in {count}/{n}" for latent, count in selection_counts(folds, "main_latent").items())
    return f"Split latents: {split}. Main latent: {main}."


def unstable_split_text(row: dict, folds: pd.DataFrame, noun: str = "letter") -> str:
    """The warning for a class whose split latents change between folds; noun: "letter", or the task's class noun."""
    return (f"The split latents change between folds: only {row['split_stability']:.0%} of the {len(folds)} folds "
            f"selected {latent_list(row['split_latents'])} (shown as this {noun}'s split latents). Which latents a "
            f"word sample makes look like the {noun} is itself uncertain here; the interval covers it, and "
            "numbers measured on one 80/20 split (SAEBench) can land far from these.")


def modal_fold_fits(ks: pd.DataFrame, folds: pd.DataFrame, split_latents: list[int]) -> pd.DataFrame:
    """The k-sparse fits of the first fold whose selection is the letter's split latents (all fits when the
    database has no folds)."""
    if "fold" not in ks.columns or ks.empty:
        return ks
    chosen = next((int(f["fold"]) for f in records(folds) if [int(x) for x in f["split_latents"]] == split_latents),
                  int(ks["fold"].min()))
    return ks[ks["fold"] == chosen].reset_index(drop=True)


def is_unstable(stability: pd.DataFrame | None, sae_key: str, letter: str) -> bool:
    """The letter's split latents change between folds in this SAE (the heatmap marks it †)."""
    if stability is None:
        return False
    value = stability.loc[sae_key, letter]
    return bool(pd.notna(value) and value < 1)


def split_rule_note(summary: dict | None, letter_row: dict | None = None, class_label: str = "") -> None:
    """The split-latent rule under the headline numbers: the other rule's number and the method band, for the SAE
    (summary: its sae_absorption row) or, with letter_row, for one class (and which split latents the other rule
    chose)."""
    if summary is None or summary.get("split_rule") is None:
        return
    if letter_row is None:
        band = method_band((summary["mean_absorption_fraction_low"], summary["mean_absorption_fraction_high"]),
                           (summary["other_absorption_fraction_low"], summary["other_absorption_fraction_high"]))
        st.caption(verdicts.rule_sensitivity(summary["mean_absorption_fraction"], summary["other_absorption_fraction"],
                                             summary["split_rule"], summary["other_rule"], band),
                   help=SPLIT_RULE_HELP)
        return
    other = letter_row.get("other_absorption_fraction")
    if other is None and summary.get("other_rule") is not None:  # both rules chose the same split latents
        other = letter_row["mean_absorption_fraction"]
    text = verdicts.rule_sensitivity(letter_row["mean_absorption_fraction"], other, summary["split_rule"],
                                     summary.get("other_rule"), None)
    if letter_row.get("other_split_latents") is not None:
        text += (f" The other rule's split latents for {class_label}: "
                 + ", ".join(str(int(x)) for x in letter_row["other_split_latents"]) + ".")
    st.caption(text, help=SPLIT_RULE_HELP)


SPLIT_RULE_HELP = ("Split latents are the latents that together stand for the class; a word is absorbed when they stay "
                   "silent and another latent carries the class. They are chosen by k-sparse probing over candidates "
                   "ranked by SAEBench's rule (an L1 probe's weights), except where SAEBench's split latents classify "
                   "worse than the class's best single latent alone: there candidates are ranked by their own F1 "
                   "(the guarded rule, the default). SAEBench's rule is measured beside it; docs/split_rule.md says "
                   "which number to cite.")


def method_band_text(row: dict) -> str:
    """The mean absorption fraction's range over both split-latent rules' intervals (sampling and method)."""
    band = method_band((row["mean_absorption_fraction_low"], row["mean_absorption_fraction_high"]),
                       (row.get("other_absorption_fraction_low"), row.get("other_absorption_fraction_high")))
    return "—" if band is None else f"[{band[0]:.3f}, {band[1]:.3f}]"


def saebench_rule_value(row: dict) -> float | None:
    """The mean absorption fraction under SAEBench's split-latent rule (None: not measured in this database)."""
    if row.get("split_rule") == SAEBENCH_SPLIT_RULE:
        return row["mean_absorption_fraction"]
    return row.get("other_absorption_fraction") if row.get("other_rule") == SAEBENCH_SPLIT_RULE else None


# --- a latent's roles and label, as every list of latents names them ---------------------------------------
ROLE_ORDER = {"main": 0, "split": 1, "absorber": 2}


def role_text(roles: pd.DataFrame, measured: bool) -> str:
    """`main latent for S; split latent for T; absorber of X on 3 words` for one matched latent (one task)."""
    if not measured:
        return "— (no absorption measurements in that SAE)"
    parts = []
    for role in sorted(records(roles), key=lambda r: (ROLE_ORDER[r["role"]], r["letter"])):
        letter = task_info(role["task"]).class_label(role["letter"]) if "task" in role else role["letter"]
        if role["role"] == "main":
            parts.append(f"main latent for {letter}")
        elif role["role"] == "split":
            parts.append(f"split latent for {letter}")
        else:
            parts.append(f"absorber of {letter} on {role['n_words']} word{'s' if role['n_words'] != 1 else ''}")
    return "; ".join(parts) or "no first-letter role"


def other_roles_text(roles: pd.DataFrame) -> str:
    """The matched latent's roles in the tasks other than first_letter: `Semantic category (WordNet): main latent
    for animal`, one part per task."""
    parts = []
    for name, part in roles[roles["task"] != DEFAULT_TASK].groupby("task", sort=False):
        parts.append(f"{task_info(name).title}: {role_text(part, True)}")
    return " · ".join(parts) or "—"


def roles_text(roles: pd.DataFrame) -> str:
    """Every task's roles of one latent (rows of LATENT_ROLES_OF / LATENT_MATCH_ROLES), first letters first: ''
    where it has none."""
    if roles.empty:
        return ""
    first = roles[roles["task"] == DEFAULT_TASK]
    parts = [role_text(first, True)] if not first.empty else []
    others = other_roles_text(roles)
    return " · ".join(parts + ([others] if others != "—" else []))


def latent_labels(sae_key: str, latents) -> dict[int, str]:
    """latent -> label (latent_labels) for those that have one."""
    wanted = sorted({int(x) for x in latents if x is not None and not pd.isna(x)})
    return reads.latent_labels_of(sae_key, tuple(wanted)) if wanted else {}


def labelled(latent: int, label: str | None) -> str:
    """`latent 2174 · snake, snakes (62 %)`: a latent as links and lists name it."""
    return f"latent {int(latent)}" + (f" · {label}" if label else "")
