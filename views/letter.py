"""Feature (url path `letter`): for one class of one absorption task (a letter of first_letter, a WordNet category,
...), how well the SAE's latents for it track the probe, and which latents absorbed it.

`?task=` names the task (default first_letter), `?class=` (or `?letter=`, as every link before tasks) its class: old
links `/letter?sae=..&letter=s` open the first-letter task unchanged."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import verdicts
from backend.database import absorber
from backend.params import ParamError, parse_choice, parse_class
from backend.scores import DENSE_ABSORBER, is_dense_absorber
from contract import provenance
from views import absorption_ui as ui
from views import common, reads, truth_ui

DEFAULT_LETTER = "s"
SCATTER_X = {"encoder": "encoder cosine with the probe", "latent": "latent id"}
CLASS_PARAMS = ("class", "letter")  # either names the class, for any task; `class` wins when both are given

db = common.get_db()
sae = common.current_sae()
sae_key = sae.sae_key
task = ui.current_task()
task_name, noun = task.task, task.class_noun
if not task.classes:
    st.title(task.title)
    st.info(f"The task {task.title} (`{task_name}`) has no classes in this database.")
    st.stop()


def requested_class() -> tuple[str | None, str]:
    """The class the URL names and the parameter that named it."""
    for name in CLASS_PARAMS:
        value = st.query_params.get(name)
        if value is not None and value.strip():
            return value, name
    return None, ui.class_param(task_name)


value, param = requested_class()
default_class = DEFAULT_LETTER if task.is_letters and DEFAULT_LETTER in task.classes else task.classes[0]
try:
    letter = parse_class(value, task.classes, task_name, default=default_class, name=param)
    scatter_x = parse_choice(st.query_params.get("x"), SCATTER_X, "x", "encoder")
except ParamError as error:
    common.show_param_error(error)
# Make the task and the class (default, or lower-cased) explicit in the URL, under the task's parameter name.
canonical = ui.class_param(task_name)
if st.query_params.get("task") != task_name:
    st.query_params["task"] = task_name
if st.query_params.get(canonical) != letter:
    st.query_params[canonical] = letter
for alias in CLASS_PARAMS:
    if alias != canonical and alias in st.query_params:
        st.query_params.pop(alias)
label = task.class_label(letter)


def on_task_selected() -> None:
    st.query_params["task"] = st.session_state["letter_task_select"]
    for name in CLASS_PARAMS:  # classes do not carry over between tasks: the page opens the task's default
        st.query_params.pop(name, None)


def on_letter_selected() -> None:
    st.query_params[canonical] = st.session_state["letter_select"]


def on_x_selected() -> None:
    st.query_params["x"] = st.session_state["letter_scatter_x"]


st.title(f"Letter {label}" if task.is_letters else f"{task.title}: {label}")
st.caption(f"SAE `{sae_key}` · `{sae.hook_name}` · "
           + (f"words that start with “{label}”" if task.is_letters else
              f"words of class “{label}” · task `{task_name}`: {task.description}"))
ui.caveat(sae)
ui.explainer()

choices = st.columns([1, 1]) if len(ui.tasks()) > 1 else [st.container()]
if len(ui.tasks()) > 1:
    titles = {t.task: t.title for t in ui.tasks()}
    st.session_state["letter_task_select"] = task_name  # the URL is the source of truth; the widgets follow it
    choices[0].selectbox("task", list(titles), key="letter_task_select", format_func=titles.get,
                         on_change=on_task_selected, help="The absorption task; kept in the URL (?task=).")
st.session_state["letter_select"] = letter
choices[-1].selectbox(noun, list(task.classes), key="letter_select", format_func=task.class_label,
                      on_change=on_letter_selected, help=f"The choice is kept in the URL (?{canonical}=).")

if not ui.has_absorption(sae_key, task_name):
    ui.no_absorption_message(sae_key, task)
    st.stop()
row = reads.sae_letter(sae_key, letter, task_name)
if row is None:
    st.info(f"No absorption measurements for {noun} {label} of task `{task_name}` in SAE `{sae_key}`"
            + ("." if task.is_letters else " (a class with too few words, or a probe run without it)."))
    st.stop()

ui.probe_run_note(sae, letter, task_name)
split_latents = [int(x) for x in row["split_latents"]]
if not row["main_in_split"]:
    st.warning(verdicts.main_outside_split(int(row["main_latent"]), split_latents, label))


def metric_with_interval(column, label: str, value, low, high, help_text: str) -> None:
    column.metric(label, "—" if value is None else f"{value:.3f}", help=help_text)
    column.caption(ui.ci_text(low, high) if value is not None else "not measured")


# --- headline numbers -------------------------------------------------------------------------
warning = ui.letter_unreliable(row, noun)
if warning:
    st.warning(warning)

rates = st.columns(3)
metric_with_interval(rates[0], "mean absorption fraction", row["mean_absorption_fraction"],
                     row["absorption_fraction_low"], row["absorption_fraction_high"],
                     "Projection metric (SAEBench): mean over the probe's true positives. "
                     + provenance.help_for("sae_letters.mean_absorption_fraction", "absorption_words.absorption_fraction"))
metric_with_interval(rates[1], "full-absorption rate", row["full_absorption_rate"],
                     row["full_absorption_rate_low"], row["full_absorption_rate_high"],
                     f"{row['n_full_absorption']} words fully absorbed (split latents silent, one latent carries "
                     f"the {noun}). " + provenance.help_for("sae_letters.full_absorption_rate",
                                                            "absorption_words.is_full_absorption"))
metric_with_interval(rates[2], "paper absorption rate", row["paper_absorption_rate"],
                     row["paper_absorption_rate_low"], row["paper_absorption_rate_high"],
                     f"Ablation metric: {row['n_paper_absorption']} absorbed of {row['n_sampled']} sampled "
                     f"({row['n_candidates']} candidates). "
                     + provenance.help_for("sae_letters.paper_absorption_rate", "absorption_words.is_absorption"))
st.caption("Intervals: 95% bootstrap over folds, then words within each fold, so they cover which probe and split "
           "latents a word sample produces as well as which words were measured."
           + ("" if row["included"] else f" This {noun} is not in the SAE's headline means (probe F1 ≤ {ui.MIN_PROBE_F1})."))
ui.split_rule_note(reads.sae_absorption(sae_key, task_name), row, label)
top = st.columns(3)  # three a row: five labels are cut off at 1024 px
top[0].metric("probe F1", "—" if row["probe_f1"] is None else f"{row['probe_f1']:.3f}",
              help="Ground-truth linear probe, out of fold: each word scored by a probe that never saw it "
                   "(positive when its logit > 0). " + provenance.help_for("letter_probes.probe_f1"))
top[0].caption(f"P {row['probe_precision']:.3f} · R {row['probe_recall']:.3f}"
               + (f" · AUC {row['probe_auc']:.3f}" if row["probe_auc"] is not None else ""))
top[1].metric("probe stability", f"{row['probe_stability']:.3f}",
              help="Cosine between probes trained on two disjoint halves of the training words.")
answers = ("“ A”…“ Z”" if task.is_letters or not task.answers else
           ", ".join(f"“{a}”" for a in task.answers[:4]) + (", …" if len(task.answers) > 4 else ""))
toy = truth_ui.has_truth(sae_key)
if toy:  # the toy model has no attention: its "accuracy" would read as a finding and is none
    top[2].metric("model accuracy", "n/a", help=truth_ui.MODEL_CHECK_NOTE)
    top[2].caption("toy model: no model check")
else:
    top[2].metric("model accuracy", f"{row['model_accuracy']:.1%}",
                  help=f"How often the model itself answers this {noun} right (argmax over {answers}). "
                       + provenance.help_for("letter_probes.model_accuracy"))
    top[2].caption(f"on {row['model_checked']:,} prompts")
counts = st.columns(3)
counts[0].metric("split latents", f"{row['n_split']}", help="Accepted by the τ = 0.03 rule (SAEBench counts them all). "
                 + provenance.help_for("sae_letters.split_latents"))
counts[1].metric("probe true positives", f"{row['n_probe_true_positives']:,}",
              help=f"Words of this {noun} their out-of-fold probe gets right: the words absorption is measured on.")


if toy:
    truth_ui.feature_panel(sae_key, task_name, letter)

folds = reads.sae_letter_folds(sae_key, letter, task_name)
if len(folds) > 1:
    st.subheader("Across folds")
    if row["split_stability"] < 1:
        st.warning(ui.unstable_split_text(row, folds, noun))
    st.dataframe(ui.fold_table(folds), hide_index=True, width="stretch", key="letter_folds",
                 column_config={name: st.column_config.NumberColumn(format="%.3f")
                                for name in ("main latent F1", "absorption fraction", "full-absorption rate",
                                             "paper absorption rate")})
    st.caption("Each fold's words are measured against a probe, an L1 probe and k-sparse probes fitted on the other "
               "folds. Selected in: how many folds chose each latent. " + ui.selection_text(folds))


# --- classifiers compared --------------------------------------------------------------------
def k_row(ks: pd.DataFrame, k: int) -> dict | None:
    match = ks[ks["k"] == k]
    return None if match.empty else match.iloc[0].to_dict()


def sign(value: int) -> str:
    return "+" if value >= 0 else "−"


def classifier_table(row: dict, ks: pd.DataFrame) -> pd.DataFrame:
    k_split = k_row(ks, row["n_split"])
    rows = [
        ("linear probe (ground truth)", "d_model probe", row["probe_precision"], row["probe_recall"], row["probe_f1"]),
        ("main latent (encoder closest to probe)", f"latent {row['main_latent']}", row["main_precision"],
         row["main_recall"], row["main_f1"]),
        ("best single latent", f"latent {row['best_latent']}", row["best_precision"], row["best_recall"], row["best_f1"]),
    ]
    if k_split is not None:
        latents = ", ".join(str(int(x)) for x in k_split["latents"])
        rows.append((f"k-sparse probe (k = n_split = {row['n_split']})", f"latents {latents}",
                     k_split["precision"], k_split["recall"], k_split["f1"]))
    rows += [
        ("best residual neuron", f"neuron {row['neuron']} ({sign(row['neuron_sign'])})",
         row["neuron_precision"], row["neuron_recall"], row["neuron_f1"]),
        ("best PCA direction", f"PC {row['pca_component']} ({sign(row['pca_sign'])})",
         row["pca_precision"], row["pca_recall"], row["pca_f1"]),
    ]
    return pd.DataFrame(rows, columns=["classifier", "direction", "precision", "recall", "F1"])


ks = ui.modal_fold_fits(reads.sae_letter_k(sae_key, letter, task_name), folds, split_latents)
left, right = st.columns([3, 2])
with left:
    st.subheader("Probe vs latents vs baselines")
    st.caption("Precision / recall / F1 on measured words (each out of fold). No latent should be expected to match the probe; "
               "a large gap between the main latent's recall and the probe's is where absorption hides.")
    number = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(classifier_table(row, ks), hide_index=True, width="stretch",
                 column_config={"precision": number, "recall": number, "F1": number}, key="letter_classifiers")
with right:
    st.subheader("k-sparse probe F1 vs k")
    if ks.empty:
        st.caption("No k-sparse fits stored.")
    else:
        colors = [ui.SPLIT_COLOR if k <= row["n_split"] else "rgb(190,190,190)" for k in ks["k"]]
        added = [f"+ latent {int(latents[-1])}" for latents in ks["latents"]]
        fig = go.Figure(go.Bar(x=ks["k"], y=ks["f1"], marker_color=colors, text=added, textposition="none",
                               hovertemplate="k = %{x}<br>F1 = %{y:.3f}<br>%{text}<extra></extra>"))
        fig.add_hline(y=row["probe_f1"], line_dash="dot", annotation_text="probe F1", line_color="black")
        fig.update_layout(height=280, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="k (latents)",
                          xaxis_dtick=1, yaxis_title="F1", yaxis_range=[0, 1.02], showlegend=False)
        st.plotly_chart(fig, width="stretch", key="letter_k_chart")
        st.caption(f"Blue: the {row['n_split']} split latent(s) accepted while F1 improved by > τ = 0.03 "
                   f"({', '.join(map(str, split_latents))}); grey: the first k the rule rejected, where the fits stop.")


# --- absorbed words and absorbing latents ----------------------------------------------------
def words_with_absorbers(words: pd.DataFrame, cos: dict[int, float], density: dict[int, float]) -> pd.DataFrame:
    """One display row per absorbed word and metric, with its absorber (the build's: the first of its top
    latents that is not one of its fold's split latents)."""
    out = []
    for w in ui.records(words):
        found = absorber(w)
        latent, act, score = found if found else (None, None, None)
        out.append({
            "word": w["word"].strip() if isinstance(w["word"], str) else f"<{w['token_id']}>",
            "token": repr(w["word"]), "metric": w["metric"], "fold": w.get("fold"),
            "absorption fraction": w["absorption_fraction"], "full": w["is_full_absorption"],
            "paper absorption": w["is_absorption"], "P": w["probe_projection"],
            "absorber id": latent, "absorber act": act,
            "probe cos": cos.get(latent) if latent is not None else None, "score": score,
            "absorber density": density.get(latent) if latent is not None else None,
            "absorber": ui.latent_url(sae_key, latent, task_name) if latent is not None else None,
            "token link": ui.token_url(sae_key, w["word"]) if isinstance(w["word"], str) else None,
            "spelling check": ui.spell_url(sae_key, w["word"], task_name) if isinstance(w["word"], str) else None,
        })
    return pd.DataFrame(out)


def absorbing_latents(table: pd.DataFrame) -> pd.DataFrame:
    """Latents that are the top latent of a fully absorbed (projection) or absorbed (paper) word."""
    absorbed = table if table.empty else table[(table["full"] == True) | (table["paper absorption"] == True)]  # noqa: E712
    if absorbed.empty:
        return pd.DataFrame(columns=["absorber id", "words", "probe cos", "density", "examples"])
    grouped = absorbed.groupby("absorber id").agg(words=("word", "nunique"), cos=("probe cos", "first"),
                                               density=("absorber density", "first"),
                                               examples=("word", lambda s: ", ".join(sorted(set(s))[:6])))
    return grouped.rename(columns={"cos": "probe cos"}).reset_index().sort_values("words", ascending=False)


cos_frame = reads.letter_latent_cos(sae_key, letter, task_name)
cos_by_latent = dict(zip(cos_frame["latent"].astype(int), cos_frame["decoder_cos"].astype(float)))
density_by_latent = dict(zip(cos_frame["latent"].astype(int), cos_frame["density"].astype(float)))
word_table = words_with_absorbers(reads.absorbed_words(sae_key, letter, task_name), cos_by_latent,
                                  density_by_latent)
absorbers = absorbing_latents(word_table)
absorber_ids = {int(a) for a in absorbers["absorber id"]}
absorber_labels = ui.latent_labels(sae_key, absorber_ids)
if not word_table.empty:
    word_table["absorber label"] = [absorber_labels.get(int(x), "") if pd.notna(x) else ""
                                    for x in word_table["absorber id"]]


def latent_category(latent: int, main_latent: int, split: frozenset[int], absorbing: frozenset[int]) -> str:
    if latent == main_latent:
        return "main latent (also split)" if latent in split else "main latent"
    if latent in split:
        return "split latent"
    if latent in absorbing:
        return "absorbing latent"
    return "other"


CATEGORY_STYLE = {  # drawn in this order, so the marked latents sit on top
    "other": dict(color=ui.OTHER_COLOR, size=5, symbol="circle"),
    "absorbing latent": dict(color=ui.ABSORBER_COLOR, size=10, symbol="diamond"),
    "split latent": dict(color=ui.SPLIT_COLOR, size=11, symbol="circle"),
    "main latent": dict(color=ui.MAIN_COLOR, size=14, symbol="star"),
    "main latent (also split)": dict(color=ui.MAIN_COLOR, size=14, symbol="star"),
}


@st.cache_resource(max_entries=64, show_spinner=False)
def cosine_scatter(cos_frame: pd.DataFrame, x_column: str, main_latent: int, split: frozenset[int],
                   absorbing: frozenset[int]) -> go.Figure:
    """Every latent as a point, the class's main, split and absorbing latents marked. Built once per class and
    cached as a resource: plotly validates each of a wide SAE's points (a quarter second at 16k latents); a
    pickled Figure would be validated again on every load. The page only reads it."""
    frame = cos_frame.assign(category=[latent_category(int(x), main_latent, split, absorbing)
                                       for x in cos_frame["latent"]])
    fig = go.Figure()
    for category, style in CATEGORY_STYLE.items():
        part = frame[frame["category"] == category]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part[x_column], y=part["decoder_cos"], mode="markers", name=f"{category} ({len(part)})",
            marker=dict(color=style["color"], size=style["size"], symbol=style["symbol"]),
            customdata=part["latent"].astype(int).tolist(),
            hovertemplate="latent %{customdata}<br>decoder cos %{y:.3f}<br>encoder cos %{x:.3f}<extra></extra>"
            if x_column == "encoder_cos" else "latent %{customdata}<br>decoder cos %{y:.3f}<extra></extra>",
        ))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="decoder cosine with the probe",
                      xaxis_title=SCATTER_X["encoder" if x_column == "encoder_cos" else "latent"],
                      legend=dict(orientation="h", y=1.08), clickmode="event+select")
    return fig


def picked_latent(event) -> int | None:
    """The latent of the clicked point, if any."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", [])
    for point in points:
        data = point.get("customdata")
        if isinstance(data, list):
            data = data[0] if data else None
        if data is not None:
            return int(data)
    return None


st.subheader("Every latent's decoder cosine with the probe")
st.caption(f"Click a point to open that latent. Absorbing latents are the top latent of a word whose {noun} was "
           "absorbed (full absorption or the paper's ablation test); typical absorbers have probe cosine 0.05–0.15.")
st.session_state["letter_scatter_x"] = scatter_x
st.radio("x axis", list(SCATTER_X), format_func=SCATTER_X.get, key="letter_scatter_x", horizontal=True,
         on_change=on_x_selected)
event = st.plotly_chart(cosine_scatter(cos_frame, "encoder_cos" if scatter_x == "encoder" else "latent",
                                       int(row["main_latent"]), frozenset(split_latents), frozenset(absorber_ids)),
                        width="stretch", key=f"letter_scatter_{sae_key}_{letter}" if task.is_letters else
                        f"letter_scatter_{sae_key}_{task_name}_{letter}", on_select="rerun",
                        selection_mode="points")
clicked = picked_latent(event)
if clicked is not None:  # switch_page is not allowed in a callback: it happens here, in the script body
    st.switch_page(common.PAGE_FILES["latent"],
                   query_params={"sae": sae_key, "latent": str(clicked), **ui.task_params(task_name)})

st.subheader(f"Absorbing latents ({len(absorbers)})")
if absorbers.empty:
    st.caption(f"No word of this {noun} was fully absorbed or passed the paper's ablation test.")
else:
    dense = [item for item in ui.records(absorbers) if is_dense_absorber(item["density"])]
    if dense:
        st.warning(f"{len(dense)} of these {len(absorbers)} absorbers are dense: each fires on at least "
                   f"{DENSE_ABSORBER:.0%} of all tokens, so it is a general latent carrying the {noun}'s direction, "
                   f"not a token-aligned latent like the paper's “short” absorber. The metric counts both alike; "
                   f"{sum(item['words'] for item in dense):,} of the "
                   f"{int(absorbers['words'].sum()):,} absorptions listed are theirs.")
    for item in ui.records(absorbers.head(15)):
        cos_text = f" · probe cos {item['probe cos']:.3f}" if item["probe cos"] is not None else ""
        if item["density"] is not None:
            dense_mark = " (dense)" if is_dense_absorber(item["density"]) else ""
            cos_text += f" · fires on {item['density']:.1%} of tokens{dense_mark}"
        label = absorber_labels.get(int(item["absorber id"]))
        common.page_link("latent", f"Latent {int(item['absorber id'])}{f' ({label})' if label else ''} — absorbed "
                         f"{item['words']} word(s){cos_text}: {item['examples']}", sae=sae_key, latent=int(item["absorber id"]),
                         **ui.task_params(task_name))
    if len(absorbers) > 15:
        st.caption(f"… and {len(absorbers) - 15} more (see the table below).")

st.subheader("Absorbed words")
if word_table.empty:
    st.caption(f"No word of this {noun} shows absorption under either metric.")
else:
    show_all = st.toggle("include sampled words the ablation metric did not call absorbed", key="letter_show_all")
    shown = word_table if show_all else word_table[(word_table["metric"] == "projection")
                                                   | (word_table["paper absorption"] == True)]  # noqa: E712
    st.caption("projection rows: absorption fraction > 0 or full absorption (score = activation × probe cosine); "
               "ablation rows: the paper's sampled candidates (score = attribution, most negative first). "
               "P = the word's activation projected on the unit probe direction.")
    number = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(
        shown[["word", "metric", "fold", "absorption fraction", "full", "paper absorption", "P", "absorber",
               "absorber label", "absorber act",
               "probe cos", "absorber density", "score", "spelling check", "token link", "token"]],
        hide_index=True, width="stretch", key="letter_words",
        column_config={
            "absorption fraction": number, "P": number, "absorber act": number, "probe cos": number, "score": number,
            "absorber density": st.column_config.NumberColumn(
                format="%.4f", help=f"Share of all dashboard tokens the absorber fires on; ≥ {DENSE_ABSORBER} is a "
                                    "dense, general latent rather than a token-aligned absorber."),
            "absorber": st.column_config.LinkColumn(
                "absorber", display_text=r"latent=(\d+)",
                help="The word's top latent that is not a split latent (by projection, or by attribution for the "
                     "ablation metric); click to open it."),
            "token link": st.column_config.LinkColumn("word across SAEs", display_text="token page →"),
            "spelling check": st.column_config.LinkColumn(
                "spelling check", display_text="ablate it →",
                help="The task's prompt for the word on the Live page, with its absorber, main latent and a control "
                     "ablated: does the model still answer?"),
            "token": st.column_config.TextColumn("token text", help="The exact token, with its leading space."),
        })
