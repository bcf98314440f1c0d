"""Latent dashboard: contexts with per-token highlighting, quantiles, histogram, logits, neighbours."""

from __future__ import annotations

import random

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import neuronpedia, scores
from backend.params import ParamError, parse_latent
from contract import provenance
from contract.rows import SaeRow
from contract.schema import DEFAULT_TASK
from views import absorption_ui, common, reads, truth_ui

db = common.get_db()
sae = common.current_sae()
d_sae = int(sae.d_sae)
try:
    latent_id = parse_latent(st.query_params.get("latent"), d_sae)
except ParamError as error:
    common.show_param_error(error)
if latent_id is None:
    latent_id = 0
    st.query_params["latent"] = "0"
task = absorption_ui.current_task()  # `?task=`: whose class probes the absorption panel's profile shows


def go_to(latent: int) -> None:
    st.query_params["latent"] = str(latent)


def random_live_latent() -> None:
    n_live = db.count_live_latents(sae.sae_key)
    if n_live:
        go_to(db.live_latent_at(sae.sae_key, random.randrange(n_live)))


def jump() -> None:
    go_to(int(st.session_state["latent_jump"]))


def release_text(sae: SaeRow, latent: int) -> str:
    """For a sae-lens release SAE: where it comes from, and its Neuronpedia page when sae-lens names one."""
    if sae.source != "release":
        return ""
    text = f" · from `{sae.release}` / `{sae.sae_id}`"
    url = neuronpedia.feature_url(sae.release, sae.sae_id, latent)
    return text + (f" · [Neuronpedia]({url})" if url else "")


st.title(f"Latent {latent_id}")
st.caption(f"SAE `{sae.sae_key}` · `{sae.hook_name}` · {d_sae:,} latents" + release_text(sae, latent_id))

nav = st.columns([1, 1, 1, 2])
nav[0].button("← previous", on_click=go_to, args=(max(latent_id - 1, 0),), disabled=latent_id == 0,
              key="latent_prev", width="stretch")
nav[1].button("next →", on_click=go_to, args=(min(latent_id + 1, d_sae - 1),), disabled=latent_id >= d_sae - 1,
              key="latent_next", width="stretch")
nav[2].button(":material/casino: random live", on_click=random_live_latent, key="latent_random", width="stretch")
# The URL is the source of truth: the box shows the latent of the URL after next/previous, a link or an SAE switch
# (a keyed widget ignores `value=` once it exists).
st.session_state["latent_jump"] = min(latent_id, d_sae - 1)
nav[3].number_input("jump to latent", min_value=0, max_value=d_sae - 1, step=1, key="latent_jump", on_change=jump,
                    label_visibility="collapsed")
if note := st.session_state.pop(common.MATCH_NOTE, None):
    st.info(note)


def render_label() -> None:
    """What the latent does, in one line: its label (top tokens by activation mass) and its roles in the tasks."""
    found = reads.latent_label(sae, latent_id)
    roles = absorption_ui.roles_text(reads.latent_roles_of(sae.sae_key, (latent_id,))) \
        if reads.has_absorption_tables() else ""
    if found is None:
        why = ("it never fired on the dashboard corpus" if sae.sae_key in reads.labelled_sae_keys() else
               "this database has no labels for this SAE (built before schema v14: a `build` of it adds them)")
        st.markdown(f"**No label**: {why}." + (f" Roles: {roles}." if roles else ""))
        return
    st.markdown(f"#### {found.label}" + (f"\n**Roles:** {roles}" if roles else ""))
    tokens = ", ".join(f"{token!r} {share:.0%}" for token, share in found.top_tokens)
    st.caption(f"Label: its top tokens by activation mass on the dashboard corpus, with their share of it ({tokens})."
               + (f" Explanation ({found.explanation_source}): {found.explanation}" if found.explanation else ""))


render_label()

latent = db.latent(sae, latent_id)
if latent is None:
    st.error(f"Latent {latent_id} has no row in this database.")
    st.stop()

cols = st.columns(4)
cols[0].metric("density", f"{latent.density:.2e}" if 0 < latent.density < 1e-3 else f"{latent.density:.3%}",
               help="fraction of corpus tokens where it is > 0. " + provenance.help_for("latents.density"))
cols[1].metric("max activation", f"{latent.max_act:.2f}", help=provenance.help_for("latents.max_act"))
cols[2].metric("mean activation (when firing)", f"{latent.mean_act:.2f}", help=provenance.help_for("latents.mean_act"))
cols[3].metric("tokens fired", f"{latent.n_fired:,}",
               help=f"of {sae.n_tokens:,} tokens measured. " + provenance.help_for("latents.n_fired"))

alpha = absorption_ui.steer_alpha(latent.max_act)
if not truth_ui.has_truth(sae.sae_key):  # a toy world's "model" has no tokens to generate
    common.page_link("live", f"Steer with latent {latent_id} (× {alpha:g}) →", **absorption_ui.steer_params(
        sae.sae_key, latent_id, alpha))
    st.caption(f"Adds {alpha:g} × its decoder row (twice its corpus maximum) at every token of a short text on the "
               "Live page, and shows the model's continuation with and without it.")

if latent.is_dead:
    st.warning(f"Latent {latent_id} never fired on the {sae.n_tokens:,} tokens measured: it is dead here, "
               "so it has no contexts or histogram. Its logits and neighbours are shown below.")

contexts = db.contexts(sae, latent_id, latent.max_act)
top = [c for c in contexts if c.kind == 0]
quantiles = [c for c in contexts if c.kind > 0]


def render_contexts(items) -> None:
    for c in items:
        peak = c.token_positions.index(c.pos)
        st.markdown(
            f'<div style="display:flex;gap:0.6em;align-items:baseline"><code style="min-width:4.5em">{c.act:.2f}</code>'
            f'{common.context_html(c.tokens, c.activations, latent.max_act, peak)}</div>',
            unsafe_allow_html=True,
        )


main, side = st.columns([3, 2])
with main:
    st.subheader(f"Top activations ({len(top)})")
    st.caption("One context per corpus row; the underlined token is where the latent peaks; colour = activation "
               "relative to this latent's max (hover a token for its value).")
    render_contexts(top)
    if quantiles:
        st.subheader("Quantile samples")
        n_bins = max(c.kind for c in quantiles)
        for b in range(n_bins, 0, -1):
            items = [c for c in quantiles if c.kind == b]
            if items:
                lo, hi = (b - 1) / n_bins * latent.max_act, b / n_bins * latent.max_act
                st.markdown(f"**Activation {lo:.2f} – {hi:.2f}**")
                render_contexts(items)

with side:
    st.subheader("Activation histogram")
    if sum(latent.hist_counts):
        n_bins = len(latent.hist_counts)
        width = latent.max_act / n_bins
        fig = go.Figure(go.Bar(x=[(i + 0.5) * width for i in range(n_bins)], y=latent.hist_counts, width=width,
                               marker_color="rgb(255,120,0)"))
        fig.update_layout(height=250, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="activation",
                          yaxis_title="tokens", bargap=0.05)
        st.plotly_chart(fig, width="stretch", key="latent_hist")
    else:
        st.caption("No activations.")

    st.subheader("Logits")
    st.caption("Decoder direction through the unembedding (W_dec · W_U).")
    lc = st.columns(2)
    lc[0].markdown("**promoted**")
    lc[0].dataframe({"token": [repr(t) for t, _ in latent.top_logits], "logit": [v for _, v in latent.top_logits]},
                    hide_index=True, width="stretch")
    lc[1].markdown("**suppressed**")
    lc[1].dataframe({"token": [repr(t) for t, _ in latent.bottom_logits], "logit": [v for _, v in latent.bottom_logits]},
                    hide_index=True, width="stretch")

    st.subheader("Nearest latents")
    st.caption("By cosine similarity of decoder directions.")
    neighbor_labels = absorption_ui.latent_labels(sae.sae_key, [n for n, _ in latent.neighbors])
    for neighbor, cosine in latent.neighbors:
        common.page_link("latent", f"{absorption_ui.labelled(neighbor, neighbor_labels.get(neighbor))} · cos {cosine:.3f}",
                         sae=sae.sae_key, latent=neighbor, **absorption_ui.task_params(task.task))


# --- absorption, per task ---------------------------------------------------------------------
def letter_profile_chart(cos, highlighted: set[str], task) -> go.Figure:
    colors = [absorption_ui.SPLIT_COLOR if letter in highlighted else "rgb(160,160,160)" for letter in cos["letter"]]
    fig = go.Figure(go.Bar(x=[task.class_label(letter) for letter in cos["letter"]], y=cos["decoder_cos"],
                           marker_color=colors, customdata=cos["encoder_cos"],
                           hovertemplate="%{x}: decoder cos %{y:.3f}<br>encoder cos %{customdata:.3f}<extra></extra>"))
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="decoder cos with probe",
                      xaxis_title=f"{task.class_noun} probe", bargap=0.15)
    return fig


def of_task(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    return frame[frame["task"] == task] if "task" in frame.columns else frame


def render_roles(roles, sae_key: str) -> None:
    """The latent's roles in every task, each linking to its class on the Feature page."""
    if roles.empty:
        st.caption("This latent is not a main, best or split latent of any class of any task and absorbed no "
                   "measured word.")
    for task in absorption_ui.tasks():
        main, best, split, absorbed = (of_task(frame, task.task) for frame in
                                       (roles.main, roles.best, roles.split, roles.absorbed))
        if main.empty and best.empty and split.empty and absorbed.empty:
            continue
        noun = task.class_noun
        if len(absorption_ui.tasks()) > 1:
            st.markdown(f"*{task.title}*")
        for role in absorption_ui.records(main):
            common.page_link("letter", f"Main latent for {noun} {task.class_label(role['letter'])} "
                             f"(F1 {role['main_f1']:.3f}) →", sae=sae_key,
                             **absorption_ui.class_params(task.task, role["letter"]))
        for role in absorption_ui.records(best):
            common.page_link("letter", f"Best single latent for {noun} {task.class_label(role['letter'])} "
                             f"(F1 {role['best_f1']:.3f}) →", sae=sae_key,
                             **absorption_ui.class_params(task.task, role["letter"]))
        for role in absorption_ui.records(split):
            common.page_link("letter", f"Split latent {role['split_rank']} of {role['n_split']} for {noun} "
                             f"{task.class_label(role['letter'])} →", sae=sae_key,
                             **absorption_ui.class_params(task.task, role["letter"]))
        for letter, words in absorbed.groupby("letter", sort=True):
            unique = sorted({w.strip() for w in words["word"].dropna()})
            common.page_link("letter", f"Absorber of {noun} {task.class_label(letter)} on {len(unique)} word(s): "
                             f"{', '.join(unique[:8])}{' …' if len(unique) > 8 else ''} →", sae=sae_key,
                             **absorption_ui.class_params(task.task, letter))
            cols = st.columns(3)
            for i, word in enumerate(unique[:12]):
                with cols[i % 3]:
                    common.page_link("token", f"“{word}”", sae=sae_key, token=word)


def on_task_selected() -> None:
    st.query_params["task"] = st.session_state["latent_task"]


def render_absorption_panel() -> None:
    st.divider()
    st.subheader("Absorption (first-letter task)" if task.is_letters else f"Absorption ({task.title})")
    if not absorption_ui.has_absorption(sae.sae_key):
        absorption_ui.no_absorption_message(sae.sae_key)
        return
    absorption_ui.caveat(sae)
    if truth_ui.has_truth(sae.sae_key):  # a toy run: what this latent truly is, before what the metrics say
        truth_ui.latent_panel(sae.sae_key, latent_id, task.task)
    absorption_ui.explainer()
    all_tasks = absorption_ui.tasks()
    if len(all_tasks) > 1:
        titles = {t.task: t.title for t in all_tasks}
        st.session_state["latent_task"] = task.task  # the URL is the source of truth; the widget follows it
        st.radio("task", list(titles), format_func=titles.get, key="latent_task", horizontal=True,
                 on_change=on_task_selected, help="Whose class probes the cosine profile shows; kept in the URL "
                                                  "(?task=). The roles below cover every task.")
    roles = reads.latent_roles(sae.sae_key, latent_id)
    left, right = st.columns([3, 2])
    with left:
        noun, nouns = task.class_noun, task.class_plural
        st.markdown(f"**Decoder cosine with each {noun}'s probe direction**")
        if absorption_ui.has_absorption(sae.sae_key, task.task):
            cos = reads.latent_letter_cos(sae.sae_key, latent_id, task.task)
            st.caption(f"Blue: {nouns} where this latent has a role. Typical absorbing latents have cosine 0.05–0.15 "
                       f"with the {noun} they absorb.")
            highlighted = set(of_task(roles.main, task.task)["letter"]) | set(of_task(roles.split, task.task)["letter"]) \
                | set(of_task(roles.absorbed, task.task)["letter"])
            st.plotly_chart(letter_profile_chart(cos, highlighted, task), width="stretch", key="latent_letter_profile")
        else:
            absorption_ui.no_absorption_message(sae.sae_key, task)
    with right:
        st.markdown("**Roles**")
        render_roles(roles, sae.sae_key)


# --- the same direction in other SAEs --------------------------------------------------------
def density_text(density) -> str | None:
    return None if density is None else (f"{density:.2e}" if 0 < density < 1e-3 else f"{density:.3%}")


def matches_table(matches: pd.DataFrame, roles: pd.DataFrame, measured_keys: set[str]) -> pd.DataFrame:
    several_tasks = len(absorption_ui.tasks()) > 1
    rows = []
    for match in absorption_ui.records(matches):
        other = match["other_sae_key"]
        rows.append({
            "SAE": other, "latent": absorption_ui.latent_url(other, match["other_latent"], task.task),
            "cosine": match["cosine"], "width": match["d_sae"], "L0": match["l0"],
            "architecture": absorption_ui.architecture_label(match["training_architecture"], match["architecture"]),
            "density": density_text(match["density"]),
            "first-letter role": absorption_ui.role_text(of_task(roles[roles["sae_key"] == other], DEFAULT_TASK),
                                           other in measured_keys),
        })
        if several_tasks:
            rows[-1]["roles in other tasks"] = absorption_ui.other_roles_text(roles[roles["sae_key"] == other])
    return pd.DataFrame(rows)


def render_matches_panel() -> None:
    st.divider()
    st.subheader("Same direction in other SAEs")
    frame = common.saes_frame()
    others = frame[(frame["model_name"] == sae.model_name) & (frame["hook_name"] == sae.hook_name)
                   & (frame["sae_key"] != sae.sae_key)]["sae_key"].tolist()
    if not others:
        st.info(f"No other SAE at `{sae.hook_name}` of `{sae.model_name}` in this database, so there is "
                "nothing to match this latent against. Build SAEs of other widths or sparsities at this hook to see "
                "where this direction goes.")
        return
    matches = reads.latent_matches(sae.sae_key, latent_id)
    if matches.empty:
        st.info(f"Matches for `{sae.sae_key}` were not computed (the precompute's matching stage fills them when "
                "it can load every SAE at the hook).")
        return
    st.caption("For each other SAE at this hook, the latent whose decoder direction is closest (cosine) to this "
               "one's. Near 1: the same feature. A wider SAE may split it into several latents, each with a lower "
               "cosine; an absorber here may be a clean letter latent there, or the reverse.")
    measured = set(reads.all_sae_absorption()["sae_key"]) \
        if reads.has_absorption_tables() else set()
    roles = reads.latent_match_roles(sae.sae_key, latent_id)
    st.dataframe(matches_table(matches, roles, measured), hide_index=True, width="stretch", key="latent_matches",
                 column_config={"latent": st.column_config.LinkColumn("latent", display_text=r"latent=(\d+)"),
                                "cosine": st.column_config.NumberColumn(format="%.3f"),
                                "L0": st.column_config.NumberColumn(format="%.1f")})
    link_cols = st.columns(min(len(matches), 4))
    for i, match in enumerate(absorption_ui.records(matches)):
        with link_cols[i % len(link_cols)]:
            common.page_link("latent", f"{match['other_sae_key']}: latent {match['other_latent']} "
                             f"(cos {match['cosine']:.2f}) →",
                             sae=match["other_sae_key"], latent=match["other_latent"],
                             **absorption_ui.task_params(task.task))
    unmatched = sorted(set(others) - set(matches["other_sae_key"]))
    if unmatched:
        st.caption(f"Not matched yet: {', '.join(f'`{k}`' for k in unmatched)}.")


def score_line(name: str, value: float, rank: int, n_alive: int) -> str:
    """One score with its rank, then (nested) what it is worth in this SAE (from score_validation)."""
    measured = scores.headline(validations, name)
    line = f"- **{scores.SCORE_TITLES[name]}** {value:.3f} — rank {rank:,} of {n_alive:,} alive latents"
    if measured is None:
        return line + " (not validated: this SAE has no probe-based absorption results)"
    line += f"\n    - {scores.verdict(measured, scores.headline(validations, 'density'))}"
    return line if measured.auc is None else line + f"\n    - {scores.summary(measured)}"


def render_scores_panel() -> None:
    """Probe-free absorption suspicion: the latent's scores, their ranks, and how much they are worth here."""
    st.divider()
    st.subheader("Absorption suspect without a probe")
    found = db.latent_scores(sae.sae_key, latent_id)
    if found is None:
        st.info(f"The probe-free scores are not computed for `{sae.sae_key}` in this database (its weights could "
                "not be loaded when it was built or migrated).")
        return
    st.caption("Scores from the SAE's weights alone (no task labels), higher = more suspect, checked against the "
               "latents the first-letter probes name as absorbers: read a high rank as a lead to inspect, worth "
               "only what the measured precision says.")
    if not found.alive:
        st.caption(f"enc–dec divergence {found.enc_dec:.3f}, parent cosine {found.parent:.3f}: not ranked, the "
                   "latent never fired.")
        return
    st.markdown("\n".join([score_line("enc_dec", found.enc_dec, found.enc_dec_rank, found.n_alive),
                            score_line("parent", found.parent, found.parent_rank, found.n_alive),
                            f"- density (the baseline): rank {found.density_rank:,} of {found.n_alive:,}"]))
    if found.parent_latent is not None:
        common.page_link("latent", f"Its denser parent candidate: latent {found.parent_latent} →",
                         sae=sae.sae_key, latent=found.parent_latent, **absorption_ui.task_params(task.task))
    links = st.columns(2)
    for column, name in zip(links, scores.SCORE_SORTS):
        with column:
            common.page_link("browse", f"Most suspect by {scores.SCORE_TITLES[name]} →", sae=sae.sae_key, sort=name)


validations = db.score_validation(sae.sae_key)
render_absorption_panel()
render_scores_panel()
render_matches_panel()
