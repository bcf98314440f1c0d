"""Browse: find latents by id, by a token in running text (the latents that fire most on it) or in their top
logits; sort by density/max, or by a probe-free absorption score labelled with its measured precision."""

from __future__ import annotations

import streamlit as st

from backend import scores
from backend.params import SEARCH_IN, SORTS, ParamError, parse_choice, parse_page, parse_text
from contract import provenance
from views import absorption_ui, common, reads

PAGE_SIZE = 50
N_EXAMPLES = 10  # occurrences of the searched token shown under its latents
FIRST_POSITION = 1  # the dashboards skip position 0 (an attention sink), so its occurrences do not count
SEARCH_LABELS = {"contexts": "running text", "logits": "top logits"}  # the `in` choices, as the radio shows them

db = common.get_db()
sae = common.current_sae()
try:
    query = parse_text(st.query_params.get("q"), "q").strip()
    search_in = parse_choice(st.query_params.get("in"), SEARCH_IN, "in", "contexts")
    sort = parse_choice(st.query_params.get("sort"), SORTS, "sort", "density_desc")
    page = parse_page(st.query_params.get("page"))
except ParamError as error:
    common.show_param_error(error)

st.title("Browse latents")
st.caption(f"SAE `{sae.sae_key}` · {int(sae.d_sae):,} latents")


def set_param(name: str, widget_key: str) -> None:
    value = st.session_state[widget_key]
    if value in ("", None):
        st.query_params.pop(name, None)
    else:
        st.query_params[name] = str(value)
    st.query_params.pop("page", None)


latent_to_open = st.session_state.pop("browse_latent_id", None)
if latent_to_open is not None:  # switch_page is not allowed inside a widget callback, so it happens here
    st.switch_page(common.PAGE_FILES["latent"], query_params={"sae": sae.sae_key, "latent": str(int(latent_to_open))})

st.number_input("open latent by id", min_value=0, max_value=int(sae.d_sae) - 1, value=None, step=1,
                key="browse_latent_id", placeholder=f"0 – {int(sae.d_sae) - 1}")

top = st.columns([2, 2, 3])  # the sort labels are the longest: they get the room (1024 px)
top[0].text_input("token", value=query, key="browse_q", on_change=set_param, args=("q", "browse_q"),
                  placeholder="e.g. snake, the, ing", help="Exact token text (case-insensitive, surrounding spaces ignored).")
top[1].radio("search in", list(SEARCH_IN), index=list(SEARCH_IN).index(search_in), format_func=SEARCH_LABELS.get,
             key="browse_in", on_change=set_param, args=("in", "browse_in"), horizontal=True)
validations = db.score_validation(sae.sae_key)
scored = sae.sae_key in db.scored_sae_keys()


def sort_label(name: str) -> str:
    """Score sorts carry the score's measured precision in this SAE."""
    return scores.sort_label(name, scores.headline(validations, name)) if name in scores.SCORE_SORTS else SORTS[name]


top[2].selectbox("sort by", list(SORTS), index=list(SORTS).index(sort), format_func=sort_label,
                 key="browse_sort", on_change=set_param, args=("sort", "browse_sort"))


def explain_score_sort(name: str) -> None:
    """What the score is and how well it found this SAE's probe-found absorbers (or that it could not be checked)."""
    measured = scores.headline(validations, name)
    st.caption(f"**{scores.SCORE_TITLES[name]}**: {scores.SCORE_HELP[name]} Alive latents only, most suspect first.")
    if measured is None:
        st.caption("This SAE has no probe-based absorption results to check the score against: treat the ranking "
                   "as unvalidated suspects.")
        return
    baseline = scores.headline(validations, "density")
    st.caption(f"Measured on this SAE: {scores.summary(measured)}. {scores.verdict(measured, baseline)}")


def require_scores(name: str) -> None:
    if not scored:
        st.info(f"The probe-free absorption scores are not computed for `{sae.sae_key}` in this database (its "
                "weights could not be loaded when it was built or migrated; `python -m precompute migrate` or a "
                f"build computes them). Sort by `{name}` needs them.")
        common.page_link("browse", "Browse by density instead →", sae=sae.sae_key, sort="density_desc")
        st.stop()


def latent_links(frame, extra_columns: list[str], key: str = "browse_latents") -> None:
    """The latents with their label and roles; clicking a row opens it in this tab."""
    frame = frame.copy()
    labels = absorption_ui.latent_labels(sae.sae_key, frame["latent"])
    frame["label"] = [labels.get(int(lat), "") for lat in frame["latent"]]
    columns = ["latent", "label"]
    if reads.has_absorption_tables():
        roles = reads.latent_roles_of(sae.sae_key, tuple(int(x) for x in frame["latent"]))
        frame["roles"] = [absorption_ui.roles_text(roles[roles["latent"] == int(lat)]) for lat in frame["latent"]]
        columns.append("roles")
    columns += extra_columns
    st.caption("Click a row to open its latent. label: its top tokens by activation mass (share of the latent's "
               "mass); roles: where it shows up in the absorption results.")
    event = st.dataframe(frame[columns], hide_index=True, width="stretch", key=key, on_select="rerun",
                         selection_mode="single-row",
                         column_config={"latent": st.column_config.NumberColumn("latent", format="%d"),
                                        "label": st.column_config.TextColumn("label", width="medium"),
                                        "roles": st.column_config.TextColumn("roles", width="medium"),
                                "density": st.column_config.NumberColumn(
                                    "density", format="percent", help="share of corpus tokens where it is > 0. "
                                    + provenance.help_for("latents.density")),
                                "max_act": st.column_config.NumberColumn("max activation", format="%.2f"),
                                "n_fired": st.column_config.NumberColumn("tokens fired", format="%d"),
                                "enc_dec_score": st.column_config.NumberColumn(
                                    "enc–dec divergence", format="%.3f", help=scores.SCORE_HELP["enc_dec"]),
                                "parent_score": st.column_config.NumberColumn(
                                    "parent cosine", format="%.3f", help=scores.SCORE_HELP["parent"]),
                                "parent_latent": st.column_config.NumberColumn("denser parent", format="%d"),
                                "fire_rate": st.column_config.NumberColumn("fire rate", format="percent"),
                                "mean_act": st.column_config.NumberColumn("mean activation (when firing)",
                                                                          format="%.2f"),
                                "n_occurrences": st.column_config.NumberColumn(
                                    "occurrences", help="The token's occurrences in the dashboard corpus")})
    picked = event.selection.rows if event is not None else []
    if picked:
        st.switch_page(common.PAGE_FILES["latent"],
                       query_params={"sae": sae.sae_key, "latent": str(int(frame["latent"].iloc[picked[0]]))})


def show_occurrences(text: str) -> None:
    """Where the token occurs: a few windows of the stored corpus rows, the token underlined."""
    examples = db.token_occurrences(sae, text, FIRST_POSITION, limit=N_EXAMPLES)
    st.subheader(f"Where “{text}” occurs")
    if not examples:
        st.caption("None of its occurrences is in the corpus rows this database stores (it keeps the rows that "
                   "some latent's example contexts come from).")
        return
    st.caption(f"The first {len(examples)} occurrences in the corpus rows this database stores (those the latents' "
               "example contexts come from), in corpus order.")
    for example in examples:
        highlight = example.token_positions.index(example.pos)
        st.markdown(common.context_html(example.tokens, example.activations, 1.0, highlight), unsafe_allow_html=True)


RUNNING_TEXT_COLUMNS = ["token", "n_occurrences", "mean_act", "fire_rate", "density", "max_act"]
TOP_CONTEXT_COLUMNS = ["hits", "best_act", "density", "max_act"]


def top_context_search(text: str):
    """Without the running-text index: the latents whose top contexts peak on the token (a narrower search)."""
    st.info(f"The running-text token index is not computed for `{sae.sae_key}` in this database (built or "
            "migrated from a version without it; `python -m precompute build --force` computes it with the "
            "dashboards). Shown instead: latents whose top-activating contexts peak on this token.")
    common.page_link("browse", f"Search “{text}” in top logits →", sae=sae.sae_key, q=text, **{"in": "logits"})
    st.subheader(f"Latents whose top contexts peak on “{text}”")
    return db.latents_by_top_context_token(sae, text)


def running_text_search(text: str):
    """The latents that fire most on tokens spelled `text`, from the token index (or, without it, from the
    stored top contexts)."""
    if sae.sae_key not in db.running_text_sae_keys():
        return top_context_search(text)
    st.subheader(f"Latents that fire most on “{text}” in running text")
    st.caption("For each token spelled so (ignoring case and surrounding spaces): its top latents by mean activation "
               "over its occurrences in the dashboard corpus; fire rate: the share of its occurrences where the "
               "latent is active.")
    return db.latents_by_running_token(sae, text)


if query:
    if search_in == "contexts":
        indexed = sae.sae_key in db.running_text_sae_keys()
        found = running_text_search(query)
        columns = RUNNING_TEXT_COLUMNS if indexed else TOP_CONTEXT_COLUMNS
    else:
        found = db.latents_by_logit_token(sae, query)
        st.subheader(f"Latents that promote “{query}” among their top logits")
        columns = ["logit_rank", "logit", "density", "max_act"]
    if found is None:
        pass
    elif found.empty:
        st.info(f"No latent matches “{query}”. Tokens match exactly (ignoring case and surrounding spaces); "
                "try the other search, or a shorter piece of the word as the tokenizer splits it.")
        common.page_link("token", f"What is “{query}” to the model? Token page →", sae=sae.sae_key, token=query)
    else:
        sort_column = {"density_desc": ("density", False), "density_asc": ("density", True),
                       "max_act_desc": ("max_act", False), "latent": ("latent", True),
                       "enc_dec": ("enc_dec_score", False), "parent": ("parent_score", False)}[sort]
        if sort in scores.SCORE_SORTS:
            require_scores(sort)
            found = found.merge(db.scores_of(sae.sae_key, found["latent"].tolist()), on="latent", how="left")
            columns = [scores.SCORE_SORTS[sort], *columns]
        if "sort" in st.query_params:
            found = found.sort_values(sort_column[0], ascending=sort_column[1])
        latent_links(found, columns)
    if search_in == "contexts" and found is not None and indexed:
        show_occurrences(query)
else:
    if sort in scores.SCORE_SORTS:
        require_scores(sort)
    total = db.count_browse(sae.sae_key, 0.0, 1.0, sort)
    n_pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    if page >= n_pages:
        st.error(f"`page` {page} is past the last page ({n_pages - 1}).")
        st.stop()
    frame = db.browse(sae.sae_key, sort, 0.0, 1.0, PAGE_SIZE, page * PAGE_SIZE)
    if sort in scores.SCORE_SORTS:
        st.subheader(f"Alive latents, most suspect by {scores.SCORE_TITLES[sort]} first — page {page + 1} of {n_pages}")
        explain_score_sort(sort)
        extra = [scores.SCORE_SORTS[sort], *(["parent_latent"] if sort == "parent" else [])]
    else:
        st.subheader(f"All latents, by {SORTS[sort]} — page {page + 1} of {n_pages}")
        extra = []
    latent_links(frame, [*extra, "density", "max_act", "mean_act", "n_fired"])
    pager = st.columns(2)
    if page > 0:
        with pager[0]:
            common.page_link("browse", "← previous page", sae=sae.sae_key, sort=sort, page=page - 1)
    if page + 1 < n_pages:
        with pager[1]:
            common.page_link("browse", "next page →", sae=sae.sae_key, sort=sort, page=page + 1)
