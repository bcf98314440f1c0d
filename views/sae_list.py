"""The SAE filter, grouping and pager shared by the overview and compare pages (rules in backend/sae_filter.py).
Every control writes the URL, so a filtered, grouped page is a link."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.params import ParamError
from backend.sae_filter import (
    GROUPS,
    Page,
    SAEFilter,
    group_filter,
    group_summary,
    parse_filter,
    parse_group,
    parse_list_page,
)
from views import common

ANY = "any"


def read_state(saes: pd.DataFrame) -> tuple[SAEFilter, str]:
    """The filter and grouping the URL names; a clear message and a stop for a bad value."""
    try:
        return parse_filter(st.query_params.to_dict(), saes), parse_group(st.query_params.get("group"))
    except ParamError as error:
        common.show_param_error(error)


def _set_param(name: str, value: str | None) -> None:
    if value is None or value == "" or value == ANY or (name == "group" and value == "none"):
        st.query_params.pop(name, None)
    else:
        st.query_params[name] = value
    st.query_params.pop("page", None)  # a new filter starts at its first page


def _on_choice(name: str) -> None:
    _set_param(name, st.session_state[f"sae_filter_{name}"])


def filter_controls(saes: pd.DataFrame, flt: SAEFilter, group: str, page: str) -> None:
    """Selectors for model, hook, layer, width, architecture, an L0 range and the grouping."""
    options = {"model": sorted(set(saes["model_name"])), "hook": sorted(set(saes["hook_name"])),
               "layer": [str(x) for x in sorted({int(v) for v in saes["layer"].dropna()})],
               "width": [str(x) for x in sorted({int(v) for v in saes["d_sae"]})],
               "arch": sorted(set(saes["training_architecture"].dropna()))}
    current = {key: value for key, value in flt.params().items()}
    labels = {"model": "model", "hook": "hook", "layer": "layer", "width": "width", "arch": "architecture"}
    with st.expander(f"Filter and group ({flt.describe()}{'' if group == 'none' else f', grouped by {GROUPS[group]}'})",
                     expanded=flt.active or group != "none"):
        cols = st.columns(7)
        for col, name in zip(cols, options):
            key = f"sae_filter_{name}"
            st.session_state[key] = current.get(name, ANY)  # the URL is the source of truth
            col.selectbox(labels[name], [ANY, *options[name]], key=key, on_change=_on_choice, args=(name,))
        st.session_state["sae_filter_l0"] = current.get("l0", "")
        cols[5].text_input("L0 range", key="sae_filter_l0", on_change=_on_choice, args=("l0",),
                           placeholder="e.g. 16-64", help="Inclusive; `16-` or `-64` leave one end open.")
        st.session_state["sae_filter_group"] = group
        cols[6].selectbox("group by", list(GROUPS), format_func=GROUPS.get, key="sae_filter_group",
                          on_change=_on_choice, args=("group",))
        if flt.active or group != "none":
            common.page_link(page, "Clear filters and grouping")


def link_params(flt: SAEFilter, group: str, **extra: object) -> dict[str, object]:
    params: dict[str, object] = {**flt.params(), **extra}
    if group != "none":
        params["group"] = group
    return params


def show_groups(saes: pd.DataFrame, group: str, page: str, absorption: pd.DataFrame | None = None,
                keep: dict[str, object] | None = None) -> None:
    """The grouped summary, one row per group, each with a link that narrows the list to it."""
    if group == "none" or saes.empty:
        return
    summary = group_summary(saes, group, absorption)
    st.dataframe(summary, hide_index=True, width="stretch", key=f"{page}_groups",
                 column_config={"mean explained variance": st.column_config.NumberColumn(format="%.3f"),
                                "mean absorption fraction": st.column_config.NumberColumn(format="%.3f")})
    cols = st.columns(min(len(summary), 6))
    for i, value in enumerate(summary[GROUPS[group]]):
        narrowing = group_filter(group, value)
        if narrowing:
            with cols[i % len(cols)]:
                common.page_link(page, f"only {GROUPS[group]} {value} →", **{**(keep or {}), **narrowing})


def read_page(n_items: int) -> Page:
    try:
        page = parse_list_page(st.query_params.get("page"), n_items)
    except ParamError as error:
        common.show_param_error(error)
    if page.requested_past_end:
        st.info("There is only one page of SAEs here: showing it." if page.count == 1 else
                f"There are only {page.count} pages of SAEs here: showing the last.")
    return page


def pager(page: Page, target: str, params: dict[str, object], n_items: int) -> None:
    """Previous/next links that keep the filter (shown only when there is more than one page)."""
    if page.count <= 1:
        return
    cols = st.columns([1, 2, 1])
    if page.index > 0:
        with cols[0]:
            common.page_link(target, "← previous SAEs", **params, page=page.index - 1)
    cols[1].caption(f"SAEs {page.start + 1}–{page.stop} of {n_items:,} · page {page.index + 1} of {page.count}")
    if page.index + 1 < page.count:
        with cols[2]:
            common.page_link(target, "next SAEs →", **params, page=page.index + 1)


__all__ = ["SAEFilter", "filter_controls", "link_params", "pager", "read_page", "read_state", "show_groups"]
