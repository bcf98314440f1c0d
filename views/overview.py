"""Overview: the SAEs in the database and their statistics."""

import pandas as pd
import streamlit as st

from backend.params import ParamError, parse_text
from backend.search import LabelSearch, NoRoute, SearchContext, route
from contract import provenance
from contract.rows import SaeRow
from views import absorption_ui, common, reads, sae_list

INTRO = ("An SAE latent that looks like “starts with S” can silently fail on some words (“short”, “snake”): a latent for "
         "the word itself has **absorbed** the letter's direction, while a linear probe still reads the letter there "
         "(Chanin et al., *A is for Absorption*). This database measures it for every word, SAE and task: search above, "
         "or open the paper's example, [“short”](./token?token=short).")
SEARCH_HELP = ("A word or text (snake), a latent (3783 in the default SAE, or SAE/3783), an SAE key, a letter (s), a "
               "class (animal), or `label: kosher` for the latents whose label names it. Kept in the URL (?q=).")
N_LABEL_MATCHES = 20


def on_search() -> None:
    text = st.session_state["start_q"]
    if text.strip():
        st.query_params["q"] = text
    else:
        st.query_params.pop("q", None)
    st.session_state["start_search_submitted"] = True  # typed here: go straight to the answer


def search_box(frame: pd.DataFrame) -> None:
    """The search box and where it leads: straight there when typed, a link when opened from a URL (a shared
    `/?q=` link should not trap the browser's back button in a redirect)."""
    try:
        query = parse_text(st.query_params.get("q"), "q")
    except ParamError as error:
        common.show_param_error(error)
    st.session_state["start_q"] = query
    st.text_input("Search", key="start_q", on_change=on_search, help=SEARCH_HELP,
                  placeholder="snake · 3783 · smollm2-l6-topk-4k-k32/3783 · s · animal · label: kosher")
    context = SearchContext(widths=dict(zip(frame["sae_key"], (int(d) for d in frame["d_sae"]))),
                            default_sae=common.default_sae(frame),
                            task_classes={t.task: t.classes for t in absorption_ui.tasks() if t.classes})
    found = route(query, context)
    if found is None:
        return
    if isinstance(found, LabelSearch):
        st.session_state.pop("start_search_submitted", None)
        label_matches(found.text, context.default_sae)
        return
    if isinstance(found, NoRoute):
        st.warning(found.message + (" Did you mean:" if found.suggestions else ""))
        for suggestion in found.suggestions:
            common.page_link(suggestion.page, f"{suggestion.understood} →", **suggestion.params)
        return
    if st.session_state.pop("start_search_submitted", False):
        st.switch_page(common.PAGE_FILES[found.page], query_params=found.params)
    common.page_link(found.page, f"Open {found.understood} →", **found.params)


def label_matches(text: str, default_sae: str | None) -> None:
    """The latents whose label (their top tokens by activation mass) contains `text`, the default SAE's first."""
    found = reads.latents_by_label(text, default_sae, N_LABEL_MATCHES)
    if found.empty:
        st.info(f"No latent's label contains “{text}”. Labels name each latent's top tokens; search the word "
                "itself to see which latents fire on it.")
        common.page_link("token", f"The word “{text}” on the token page →", token=text)
        return
    st.markdown(f"**Latents whose label contains “{text}”** ({len(found)}{'+' if len(found) == N_LABEL_MATCHES else ''})")
    for row in absorption_ui.records(found):
        common.page_link("latent", f"`{row['sae_key']}` {absorption_ui.labelled(row['latent'], row['label'])} →",
                         sae=row["sae_key"], latent=row["latent"])



# --- absorption on the task ------------------------------------------------------------------
DEFAULT_CLASS = "s"  # the class the absorption table's link opens, for first_letter


def absorption_table(summary, tasks_of: dict[str, list[str]]) -> pd.DataFrame:
    def with_interval(s: dict, name: str) -> str:
        return absorption_ui.interval(s[name], s[f"{name}_low"], s[f"{name}_high"])

    rows = []
    for s in absorption_ui.records(summary):
        rows.append({
            "SAE": s["sae_key"], f"{nouns} included": s["n_letters"],
            "mean absorption fraction": with_interval(s, "mean_absorption_fraction"),
            "method band": absorption_ui.method_band_text(s),
            "SAEBench's rule": absorption_ui.saebench_rule_value(s),
            "full-absorption rate": with_interval(s, "full_absorption_rate"),
            "paper absorption rate": with_interval(s, "paper_absorption_rate"),
            "mean split latents": s["mean_num_split_latents"], "main latent P": s["mean_main_precision"],
            "main latent R": s["mean_main_recall"], "main latent F1": s["mean_main_f1"], "probe F1": s["mean_probe_f1"],
            f"{noun} page": absorption_ui.letter_url(s["sae_key"], opening_class, task.task),
        })
        if len(absorption_ui.tasks()) > 1:
            rows[-1]["tasks measured"] = ", ".join(tasks_of.get(s["sae_key"], []))
    return pd.DataFrame(rows)


def on_task_selected() -> None:
    chosen = st.session_state["overview_task"]
    if absorption_ui.task_params(chosen):
        st.query_params["task"] = chosen
    else:
        st.query_params.pop("task", None)  # the default task: the URL as before tasks
    st.query_params.pop("page", None)


def absorption_section() -> None:
    """The task's headline picture: the classes x SAEs heatmap of this page's SAEs, the SAEs' headline numbers and a
    link to every class."""
    st.header(absorption_ui.task_heading(task))
    if len(absorption_ui.tasks()) > 1:
        titles = {t.task: t.title for t in absorption_ui.tasks()}
        st.session_state["overview_task"] = task.task  # the URL is the source of truth; the widget follows it
        st.radio("task", list(titles), format_func=titles.get, key="overview_task", horizontal=True,
                 on_change=on_task_selected, help="Whose absorption results this section shows; kept in the URL (?task=).")
        st.caption(f"{task.title}: {task.description}")
    if summary.empty:
        on_task = "" if task.is_letters else f" on the task {task.title}"
        st.info(f"No SAE in this database has absorption measurements{on_task} yet (the precompute's absorption stage "
                "fills them)." if not has_absorption or flt == sae_list.SAEFilter() else
                f"No SAE of this filter ({flt.describe()}) has absorption measurements{on_task}.")
        return

    paged_summary = summary[summary["sae_key"].isin(paged["sae_key"])]
    if page.count > 1:
        st.caption(f"The heatmap and the {noun} links below cover this page's SAEs ({page.start + 1}–{page.stop}).")
    cell = None
    if paged_summary.empty:
        st.info("No SAE on this page has absorption measurements.")
    else:
        heat_event = st.plotly_chart(absorption_ui.cached_letter_heatmap(reads.all_sae_letters(task.task),
                                                                  paged_summary["sae_key"].tolist(),
                                                                  letters_upper=task.is_letters),
                                     width="stretch", key="overview_heatmap", on_select="rerun", selection_mode="points")
        cell = absorption_ui.picked_cell(heat_event)
    if cell is not None:  # switch_page is not allowed in a callback: it happens here, in the script body
        st.switch_page(common.PAGE_FILES["letter"],
                       query_params={"sae": cell[0], **absorption_ui.class_params(task.task, cell[1])})
    st.caption(f"Mean absorption fraction per {noun} and SAE. Grey cells: {nouns} excluded from the headline means "
               f"because the probe itself is unreliable (F1 ≤ {absorption_ui.MIN_PROBE_F1}). Click a cell to open that "
               f"{noun}.")
    absorption_ui.caveat()
    absorption_ui.explainer()
    st.caption(f"Headline means over {nouns} whose probe F1 > {absorption_ui.MIN_PROBE_F1}, with 95% bootstrap intervals over words. "
               f"Split latents are counted as SAEBench does; main latent P/R/F1 are averaged over the included {nouns}. "
               "method band: the range over both split-latent rules' intervals; SAEBench's rule: the mean absorption "
               "fraction under SAEBench's split-latent rule.", help=absorption_ui.SPLIT_RULE_HELP)
    number = st.column_config.NumberColumn(format="%.3f")
    tasks_of: dict[str, list[str]] = {}
    if len(absorption_ui.tasks()) > 1:
        for key, name in reads.all_tasks_sae_absorption()[["sae_key", "task"]].itertuples(index=False):
            tasks_of.setdefault(key, []).append(name)
    table = absorption_table(summary, tasks_of)
    st.dataframe(table, hide_index=True, width="stretch", key="overview_absorption",
                 column_config=absorption_ui.headline_columns({
                     "mean split latents": st.column_config.NumberColumn(format="%.2f"),
                     "main latent P": number, "main latent R": number, "main latent F1": number,
                     "probe F1": number, "SAEBench's rule": number,
                     f"{noun} page": st.column_config.LinkColumn(f"{noun} page", display_text=f"{nouns} →")},
                     table.columns))

    if not paged_summary.empty:
        # One table of links (a row per SAE, a column per class) rather than 26 page links per SAE: hundreds of
        # page links were most of this page's render time.
        with st.expander(f"Open a {noun} (this page's SAEs)"):
            letter_links = pd.DataFrame({"SAE": paged_summary["sae_key"].tolist(), **{
                task.class_label(letter): [absorption_ui.letter_url(key, letter, task.task)
                                           for key in paged_summary["sae_key"]]
                for letter in task.classes}})
            st.dataframe(letter_links, hide_index=True, width="stretch", key="overview_letter_links", column_config={
                task.class_label(letter): st.column_config.LinkColumn(
                    task.class_label(letter), display_text=task.class_label(letter), width="small")
                for letter in task.classes})


def sae_statistics() -> None:
    """Each SAE's dashboard statistics (one table) and, folded away, a card per SAE of this page with its links."""
    st.subheader("SAEs in this database")
    st.caption(
        "Each SAE was run over the same held-out corpus tokens; explained variance, L0 and dead latents are "
        "measured there by the precompute (`python -m precompute build`)."
    )
    shown = frame[["sae_key", "model_name", "hook_name", "architecture", "training_architecture", "d_sae", "l0",
                   "explained_variance", "dead_fraction", "n_tokens", "source"]].rename(columns={
        "sae_key": "SAE", "model_name": "model", "hook_name": "hook", "training_architecture": "trained as",
        "d_sae": "width", "l0": "L0",
        "explained_variance": "explained variance", "dead_fraction": "dead fraction", "n_tokens": "tokens"})
    st.dataframe(shown, hide_index=True, width="stretch",
                 column_config={"explained variance": st.column_config.NumberColumn(format="%.3f"),
                                "L0": st.column_config.NumberColumn(format="%.1f"),
                                "dead fraction": st.column_config.NumberColumn(format="%.3f")})
    if len(frame) > 1:
        common.page_link("compare", "Compare these SAEs: absorption, splitting and explained variance against L0, "
                         "width and layer →", **sae_list.link_params(flt, "none"), **absorption_ui.task_params(task.task))
    with st.expander(f"Each SAE of this page: statistics and links ({len(paged)})"):
        for sae in [SaeRow.from_record(record) for record in paged.to_dict("records")]:
            with st.container(border=True):
                st.subheader(sae.sae_key)
                cols = st.columns(5)
                cols[0].metric("width", f"{sae.d_sae:,}")
                cols[1].metric("L0", f"{sae.l0:.1f}", help=provenance.help_for("saes.l0"))
                cols[2].metric("explained variance", f"{sae.explained_variance:.3f}",
                               help=provenance.help_for("saes.explained_variance"))
                cols[3].metric("dead latents", f"{sae.n_dead:,}", help=f"{sae.dead_fraction:.1%} never fired. "
                               + provenance.help_for("saes.n_dead"))
                cols[4].metric("tokens measured", f"{sae.n_tokens:,}")
                architecture = absorption_ui.architecture_label(sae.training_architecture, sae.architecture)
                st.caption(f"`{sae.hook_name}` on `{sae.model_name}` · {architecture} · from `{sae.origin}` · "
                           f"corpus `{sae.corpus}`")
                link_cols = st.columns(2)
                with link_cols[0]:
                    common.page_link("latent", "Open latent 0 →", sae=sae.sae_key, latent=0)
                with link_cols[1]:
                    common.page_link("browse", "Browse latents →", sae=sae.sae_key)


st.title("Feature absorption explorer")
db = common.get_db()
frame = common.saes_frame()
if frame.empty:
    st.info("This database holds no SAEs yet. Add one with `python -m precompute build --sae ...`.")
    st.stop()
search_box(frame)
st.markdown(INTRO)
flt, group = sae_list.read_state(frame)
task = absorption_ui.current_task()  # `?task=`: whose absorption results the lower half shows (default first_letter)
noun, nouns = task.class_noun, task.class_plural
opening_class = DEFAULT_CLASS if task.is_letters and DEFAULT_CLASS in task.classes else \
    (task.classes[0] if task.classes else DEFAULT_CLASS)
keep = {**sae_list.link_params(flt, group), **absorption_ui.task_params(task.task)}
sae_list.filter_controls(frame, flt, group, "overview")
frame = flt.apply(frame)
if frame.empty:
    st.info(f"No SAE matches the filter ({flt.describe()}).")
    common.page_link("overview", "Show every SAE →", **absorption_ui.task_params(task.task))
    st.stop()

has_absorption = reads.has_absorption_tables()
summary = reads.all_sae_absorption(task.task) if has_absorption else pd.DataFrame()
summary = summary[summary["sae_key"].isin(frame["sae_key"])] if not summary.empty else summary
sae_list.show_groups(frame, group, "overview", summary if not summary.empty else None, keep=keep)
page = sae_list.read_page(len(frame))
paged = page.of(frame)
here = keep

absorption_section()
sae_statistics()
sae_list.pager(page, "overview", here, len(frame))
