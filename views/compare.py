"""Compare SAEs: absorption, feature splitting and reconstruction against L0 and width, per letter (or per class of
another task: `?task=`, default first_letter), side by side, and every SAE's headline number on every task."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from backend.params import ParamError, parse_sae_keys
from backend.sae_filter import task_default_saes
from views import absorption_ui as ui
from views import common, reads, sae_list, truth_ui

SYMBOLS = ("circle", "diamond", "square", "triangle-up", "x", "star", "cross", "triangle-down")

COMPARE_EXPLAINER = f"""
Each point is one SAE: x is its L0 (mean active latents per token), its width (latents, log scale) or its layer;
colour is its layer, the marker its training architecture, the marker size its width. Error bars are 95 % bootstrap intervals
over words. Click a point to open that SAE's Feature page (its latents, for explained variance).

- **Mean absorption fraction** (SAEBench's projection metric): for each held-out word the probe gets
  right, the share of its probe projection carried by latents other than the letter's split latents;
  averaged over words, then over the letters whose probe F1 > {ui.MIN_PROBE_F1}.
- **Full-absorption rate**: the share of those words where every split latent is silent and one other
  latent carries ≥ 40 % of the projection.
- **Paper absorption rate** (Chanin et al.'s ablation metric): the share of the probe's true positives
  where integrated-gradients ablation finds one non-split latent carrying the model's own letter answer.
- **Main-latent precision / recall**: the latent closest to the letter's probe, used as a classifier
  ("fires" = letter), on held-out words; averaged over included letters. Absorption shows up as lost recall.
- **Split latents**: how many latents a k-sparse probe needs before F1 stops improving by > τ = 0.03
  (feature splitting), averaged over letters.
- **Explained variance**: reconstruction quality on the held-out corpus tokens; measured for every SAE,
  with or without absorption results.

**The trend to look for.** Chanin et al. ("A is for Absorption", 2024) find absorption *rises as L0
falls* (sparser SAEs fold the letter into word latents to save an active latent) and *as width grows*
(wider SAEs have more specific latents to fold it into). Read the trend within one colour and symbol
(same layer, same architecture): layers and architectures differ in their own right.

**Other tasks** (`?task=`, the selector above): the same metrics with the task's classes (a WordNet category, a part
of speech) in place of letters, each against its own probes.
"""


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    interval: bool = False  # has _low/_high bootstrap columns
    absorption: bool = True  # needs absorption results (else a dashboard metric, there for every SAE)


METRICS = (
    Metric("mean_absorption_fraction", "mean absorption fraction", interval=True),
    Metric("full_absorption_rate", "full-absorption rate", interval=True),
    Metric("paper_absorption_rate", "paper (ablation) absorption rate", interval=True),
    Metric("mean_main_precision", "main-latent mean precision"),
    Metric("mean_main_recall", "main-latent mean recall"),
    Metric("mean_num_split_latents", "mean number of split latents"),
    Metric("explained_variance", "explained variance", absorption=False),
)
# Layer is an axis too: a release such as Gemma Scope sweeps layers as much as L0 and width.
X_AXES = (("l0", "L0", "linear"), ("d_sae", "width (latents)", "log"), ("layer", "layer", "linear"))

db = common.get_db()
task = ui.current_task()
noun, nouns = task.class_noun, task.class_plural
comparison = reads.sae_comparison(task.task)
if comparison.empty:
    st.title("Compare SAEs")
    st.info("This database holds no SAEs yet. Add some with `python -m precompute build --sae ...`.")
    st.stop()
all_keys = comparison["sae_key"].tolist()
default_keys, other_models_keys = task_default_saes(comparison)
try:
    chosen = parse_sae_keys(st.query_params.get("saes"), all_keys, default=default_keys)
except ParamError as error:
    common.show_param_error(error)
flt, group = sae_list.read_state(comparison)


def on_task_selected() -> None:
    chosen_task = st.session_state["compare_task"]
    st.query_params.update(ui.task_params(chosen_task))
    if not ui.task_params(chosen_task):
        st.query_params.pop("task", None)  # the default task: a bare URL, as before tasks


def on_saes_selected() -> None:
    selection = st.session_state["compare_saes"]
    if selection:
        st.query_params["saes"] = ",".join(selection)
    else:
        st.query_params.pop("saes", None)  # nothing chosen = every SAE, as a bare URL


st.title("Compare SAEs")
if len(ui.tasks()) > 1:
    titles = {t.task: t.title for t in ui.tasks()}
    st.session_state["compare_task"] = task.task  # the URL is the source of truth; the widget follows it
    st.selectbox("task", list(titles), key="compare_task", format_func=titles.get, on_change=on_task_selected,
                 help="Whose absorption numbers the table, charts and heatmap show; kept in the URL (?task=).")
st.session_state["compare_saes"] = chosen  # the URL is the source of truth; the widget follows it
# A form: adding or removing several SAEs costs one rerun (on Apply), not one per click
with st.form("compare_saes_form", border=False):
    st.multiselect("SAEs", all_keys, key="compare_saes",
                   help="The choice is kept in the URL (?saes=key1,key2); none chosen (or no ?saes=) means every SAE "
                        "of the models measured on the task. Apply shows the chosen SAEs.")
    st.form_submit_button("Apply", on_click=on_saes_selected)
if other_models_keys and not st.query_params.get("saes", "").strip():
    st.caption(f"Shown: the SAEs of the models measured on {task.title}. Left out, as no SAE of their model has "
               f"numbers on this task: {', '.join(f'`{k}`' for k in other_models_keys)} (choose them above to add "
               "them).")
sae_list.filter_controls(comparison, flt, group, "compare")

frame = flt.apply(comparison[comparison["sae_key"].isin(chosen)]).reset_index(drop=True)
if frame.empty:
    st.info(f"None of the chosen SAEs matches the filter ({flt.describe()}).")
    common.page_link("compare", "Compare every SAE →", **ui.task_params(task.task))
    st.stop()
measured = frame[frame["has_absorption"].astype(bool)]
unmeasured = frame.loc[~frame["has_absorption"].astype(bool), "sae_key"].tolist()
if unmeasured:
    st.info(f"No absorption measurements{'' if task.is_letters else f' on the task {task.title}'} for "
            f"{', '.join(f'`{k}`' for k in unmeasured)}: "
            f"{'it appears' if len(unmeasured) == 1 else 'they appear'} with dashboard metrics only (width, L0, "
            "explained variance, dead latents). The precompute's absorption stage adds them.")


# --- the table -------------------------------------------------------------------------------
def sae_table(frame: pd.DataFrame) -> pd.DataFrame:
    def with_interval(row: dict, name: str) -> str:
        return ui.interval(row[name], row[f"{name}_low"], row[f"{name}_high"])

    rows = []
    for row in ui.records(frame):
        rows.append({
            "SAE": row["sae_key"], "layer": row["layer"],
            "architecture": ui.architecture_label(row["training_architecture"], row["architecture"]),
            "width": row["d_sae"], "L0": row["l0"], "explained variance": row["explained_variance"],
            "dead fraction": row["dead_fraction"],
            "mean absorption fraction": with_interval(row, "mean_absorption_fraction"),
            "method band": ui.method_band_text(row),
            "SAEBench's rule": ui.saebench_rule_value(row),
            "full-absorption rate": with_interval(row, "full_absorption_rate"),
            "paper absorption rate": with_interval(row, "paper_absorption_rate"),
            "mean split latents": row["mean_num_split_latents"], "main latent P": row["mean_main_precision"],
            "main latent R": row["mean_main_recall"],
            "split mode": f"{row['split_mode']} ({int(row['n_folds'])} folds)" if row["split_mode"] == "crossfit"
            else row["split_mode"],
            "between-fold SD": row["fold_sd_absorption_fraction"],
            f"{nouns} with unstable split latents": row["n_unstable_letters"], "probe run": row["probe_run_id"],
            "overview": ui.overview_url(row["sae_key"], task.task),
        })
    return pd.DataFrame(rows)


def mixed_probe_runs(measured: pd.DataFrame) -> list[str]:
    """Hooks whose compared SAEs were measured against different probe runs (other absorption configs)."""
    runs = measured.groupby("hook_name")["probe_run_id"].nunique()
    return runs[runs > 1].index.tolist()


st.subheader(f"{len(frame)} SAE{'s' if len(frame) != 1 else ''}")
keep = sae_list.link_params(flt, group, **({"saes": st.query_params["saes"]} if "saes" in st.query_params else {}),
                            **ui.task_params(task.task))
sae_list.show_groups(frame, group, "compare", measured if not measured.empty else None, keep=keep)
for hook in mixed_probe_runs(measured):
    st.warning(f"The SAEs at `{hook}` were measured against different probe runs (builds with other absorption "
               "configs: other words, split or probe); their absorption numbers are not directly comparable. "
               "See the `probe run` column.")
if measured["split_mode"].nunique() > 1:
    st.warning("These SAEs were measured in different split modes (cross-fitted: every word measured against a "
               "probe fitted on the other folds; holdout: SAEBench's 80/20 split). See the `split mode` column.")
st.caption("Absorption columns: value [95% bootstrap interval over folds and words]; — where not measured. Means "
           f"over {nouns} whose probe F1 > {ui.MIN_PROBE_F1}. between-fold SD: how much the mean absorption "
           "fraction moves between folds (each fold has its own probe and split latents). In the heatmap, † marks "
           f"a {noun} whose split latents change between folds. method band: the mean absorption fraction's range "
           "over both split-latent rules' intervals (the guarded rule, the default, and SAEBench's L1-weight ranking): "
           "what a re-run could report once the rule is counted as a choice. SAEBench's rule: the number under "
           "SAEBench's rule (SAEBench itself also measures one 80/20 split of one word sample).",
           help=ui.SPLIT_RULE_HELP)
number = st.column_config.NumberColumn(format="%.3f")
compare_table = sae_table(frame)
st.dataframe(compare_table, hide_index=True, width="stretch", key="compare_table",
             column_config=ui.headline_columns({
                 "explained variance": number, "dead fraction": number, "main latent P": number,
                 "SAEBench's rule": number, "main latent R": number, "L0": st.column_config.NumberColumn(format="%.1f"),
                 "mean split latents": st.column_config.NumberColumn(format="%.2f"),
                 "overview": st.column_config.LinkColumn("overview", display_text="open →")}, compare_table.columns))
# the answer (the table) first; the caveat and the explanations after it
ui.caveat()
with st.expander("What these metrics are, and the trend to look for", expanded=False):
    st.markdown(COMPARE_EXPLAINER)
ui.explainer()
# A toy run's SAEs have ground truth: show how right the metrics above are there.
truth_keys = [key for key in measured["sae_key"] if truth_ui.has_truth(key)]
if truth_keys:
    st.subheader("Against ground truth (toy run)")
    for key in truth_keys:
        st.markdown(f"`{key}`: the metrics' verdicts on its words against the toy's known absorption")
        truth_ui.metrics_table(key, task.task, key=f"_{key}")
# The table lists every chosen SAE; links and heatmap columns are drawn for one page of them.
page = sae_list.read_page(len(frame))
paged = page.of(frame)
sae_list.pager(page, "compare", keep, len(frame))
link_cols = st.columns(min(len(paged), 6))
for i, key in enumerate(paged["sae_key"]):
    with link_cols[i % len(link_cols)]:
        common.page_link("overview", f"{key} →", sae=key, **ui.task_params(task.task))


# --- every task ------------------------------------------------------------------------------
def task_summary(frame: pd.DataFrame, every: pd.DataFrame) -> pd.DataFrame:
    """One row per SAE of `frame`, a column per task: its mean absorption fraction there [interval], — where not
    measured on it."""
    numbers = {(r["sae_key"], r["task"]): ui.interval(r["mean_absorption_fraction"], r["mean_absorption_fraction_low"],
                                                      r["mean_absorption_fraction_high"])
               for r in ui.records(every[every["sae_key"].isin(frame["sae_key"])])}
    return pd.DataFrame([{"SAE": key, **{t.title: numbers.get((key, t.task), "—") for t in ui.tasks()}}
                         for key in frame["sae_key"]])


if len(ui.tasks()) > 1:
    st.subheader("Every task")
    st.caption("Mean absorption fraction [95% bootstrap interval] of each SAE on each task (— where not measured). "
               "Tasks differ in their words, classes and probes: compare SAEs within a column.")
    st.dataframe(task_summary(frame, reads.all_tasks_sae_absorption()), hide_index=True, width="stretch",
                 key="compare_tasks")
    task_cols = st.columns(len(ui.tasks()))
    for column, other in zip(task_cols, ui.tasks()):
        if other.task != task.task:
            with column:
                common.page_link("compare", f"Compare on {other.title} →",
                                 **{**{k: v for k, v in keep.items() if k != "task"}, **ui.task_params(other.task)})


# --- metric charts ---------------------------------------------------------------------------
def hover_text(row: dict, metric: Metric) -> str:
    value = ui.fmt(row[metric.column])
    if metric.interval:
        value = ui.interval(row[metric.column], row[f"{metric.column}_low"], row[f"{metric.column}_high"])
    return (f"<b>{row['sae_key']}</b><br>layer {layer_name(row['layer'])} · "
            f"{ui.architecture_label(row['training_architecture'], row['architecture'])}<br>"
            f"width {row['d_sae']:,} · L0 {row['l0']:.1f}<br>{metric.label}: {value}")


def error_bars(rows: list[dict], column: str) -> dict:
    """Bootstrap intervals as asymmetric error bars (no bar where an interval is missing)."""
    def half(row: dict, bound: str) -> float:
        value, edge = row[column], row[f"{column}_{bound}"]
        return 0.0 if value is None or edge is None else abs(edge - value)

    return dict(type="data", symmetric=False, thickness=1.2, array=[half(r, "high") for r in rows],
                arrayminus=[half(r, "low") for r in rows])


def layer_name(layer) -> str:
    return "?" if layer is None or pd.isna(layer) else str(int(layer))


@dataclass(frozen=True)
class Styles:
    """Colour per layer and marker symbol per training architecture, fixed over every SAE in the database
    so that a layer or an architecture looks the same in every chart and for every subset."""

    colors: dict[str, str]
    symbols: dict[str, str]

    @classmethod
    def of(cls, saes: pd.DataFrame) -> Styles:
        layers = sorted({layer_name(x) for x in saes["layer"]}, key=lambda name: (not name.isdigit(), name.zfill(4)))
        architectures = sorted(set(saes["training_architecture"].fillna("?")))
        return cls({layer: qualitative.Plotly[i % len(qualitative.Plotly)] for i, layer in enumerate(layers)},
                   {arch: SYMBOLS[i % len(SYMBOLS)] for i, arch in enumerate(architectures)})


def marker_size(width: int, smallest: int) -> float:
    """Bigger markers for wider SAEs (+4 px per 4x), so widths stay apart in the against-L0 panel."""
    return 10 + 2 * math.log2(max(width, 1) / max(smallest, 1))


MAX_LAYER_COLOURS = 10  # more layers than this: one colour scale over layers instead of a colour (and trace) each


def metric_figure(frame: pd.DataFrame, metric: Metric, styles: Styles, legend: bool = True) -> go.Figure:
    """The metric against L0, width (log x) and layer, one point per SAE. Few layers: one trace per (layer,
    architecture), a colour per layer. Many (a release sweeps every layer): one trace per architecture coloured
    on a layer scale, so a chart of hundreds of SAEs stays a handful of traces (plotly builds each slowly)."""
    rows = ui.records(frame)  # once: a frame's rows are slow to read per group
    per_layer = len({layer_name(r["layer"]) for r in rows}) <= MAX_LAYER_COLOURS
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        arch = row["training_architecture"] or "?"
        groups.setdefault((layer_name(row["layer"]) if per_layer else "", arch), []).append(row)
    layers = [r["layer"] for r in rows if r["layer"] is not None]
    smallest = int(frame["d_sae"].min())
    fig = make_subplots(rows=1, cols=len(X_AXES), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"against {title}" for _, title, _ in X_AXES])
    for i, ((layer, arch), group) in enumerate(sorted(groups.items())):
        if per_layer:
            name, color = f"layer {layer} · {arch}", styles.colors[layer]
        else:
            name = arch
            color = dict(color=[r["layer"] for r in group], colorscale="Viridis", cmin=min(layers, default=0),
                         cmax=max(layers, default=1), showscale=i == 0 and legend, colorbar=dict(title="layer", x=1.02))
        for col, (x_column, _, _) in enumerate(X_AXES, start=1):
            marker = dict(symbol=styles.symbols[arch], size=[marker_size(r["d_sae"], smallest) for r in group],
                          line=dict(width=1, color="white"))
            marker.update(color if isinstance(color, dict) else dict(color=color))
            if isinstance(color, dict) and col > 1:
                marker["showscale"] = False
            fig.add_trace(go.Scatter(
                x=[r[x_column] for r in group], y=[r[metric.column] for r in group], mode="markers",
                name=name, legendgroup=f"{layer}-{arch}", showlegend=col == 1 and legend, marker=marker,
                error_y=error_bars(group, metric.column) if metric.interval else None,
                customdata=[r["sae_key"] for r in group],
                hovertext=[hover_text(r, metric) for r in group], hovertemplate="%{hovertext}<extra></extra>",
            ), row=1, col=col)
    for col, (x_column, title, axis_type) in enumerate(X_AXES, start=1):
        fig.update_xaxes(title_text=title, type=axis_type, row=1, col=col)
        if axis_type == "log":  # ticks at the widths present: plotly's log ticks crowd a 1k-4k range
            widths = sorted({int(w) for w in frame[x_column].dropna()})
            fig.update_xaxes(tickvals=widths, ticktext=[f"{w:,}" for w in widths], row=1, col=col)
    fig.update_yaxes(title_text=metric.label, row=1, col=1)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(title="layer · trained as" if per_layer else "trained as"),
                      clickmode="event+select")
    return fig


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_metric_figure(frame: pd.DataFrame, metric: Metric, styles: Styles, legend: bool) -> go.Figure:
    """Built once per (SAEs, metric): plotly validates every point as a figure is built (hundreds of ms for
    hundreds of SAEs). A resource, not data: a pickled Figure would be validated again on every load. Pages only
    read it (st.plotly_chart copies it to a dict)."""
    return metric_figure(frame, metric, styles, legend)


def picked_sae(event) -> str | None:
    for point in ui.selected_points(event):
        data = point.get("customdata")
        if isinstance(data, list):
            data = data[0] if data else None
        if data:
            return str(data)
    return None


def render_metric(metric: Metric) -> None:
    data = (measured if metric.absorption else frame).dropna(subset=[metric.column])
    if data.empty:
        return
    legend = not LEGEND_DRAWN  # the legend is the same on every chart: drawn on the first only
    LEGEND_DRAWN.append(metric.column)
    event = st.plotly_chart(cached_metric_figure(data, metric, STYLES, legend), width="stretch", key=f"compare_{metric.column}",
                            on_select="rerun", selection_mode="points")
    clicked = picked_sae(event)
    if clicked is not None:  # switch_page is not allowed in a callback: it happens here, in the script body
        # an absorption number opens the SAE's Feature page of the task (its default class); a dashboard one, its latents
        target = "letter" if metric.absorption else "browse"
        st.switch_page(common.PAGE_FILES[target], query_params={"sae": clicked, **ui.task_params(task.task)})


STYLES = Styles.of(comparison)
LEGEND_DRAWN: list[str] = []  # the charts drawn so far in this run
st.header("Against L0, width and layer")
if measured.empty:
    st.info("None of the chosen SAEs has absorption measurements: only the dashboard metrics are plotted.")
else:
    st.subheader("Absorption")
    for metric in METRICS[:3]:
        render_metric(metric)
    st.subheader("Main latents and feature splitting")
    for metric in METRICS[3:6]:
        render_metric(metric)
st.subheader("Reconstruction")
render_metric(METRICS[6])


# --- per-letter heatmap ----------------------------------------------------------------------
if not measured.empty and measured["sae_key"].isin(paged["sae_key"]).any():
    st.header(f"Mean absorption fraction per {noun}")
    st.caption(f"Columns: the chosen SAEs with absorption results. Grey “excl” cells: {nouns} whose probe F1 ≤ "
               f"{ui.MIN_PROBE_F1}, left out of the headline means (hover for the value). Click a cell to open that "
               f"{noun}.")
    letters = reads.all_sae_letters(task.task)
    columns = measured[measured["sae_key"].isin(paged["sae_key"])]["sae_key"].tolist()
    if page.count > 1:
        st.caption(f"This page's SAEs ({page.start + 1}–{page.stop} of {len(frame):,}); the pager above moves on.")
    letters = letters[letters["sae_key"].isin(columns)]
    heat_event = st.plotly_chart(ui.cached_letter_heatmap(letters, columns, saes_as_columns=True,
                                                          letters_upper=task.is_letters),
                                 width="stretch", key="compare_heatmap", on_select="rerun", selection_mode="points")
    cell = ui.picked_cell(heat_event)
    if cell is not None:
        st.switch_page(common.PAGE_FILES["letter"], query_params={"sae": cell[0], **ui.class_params(task.task, cell[1])})
