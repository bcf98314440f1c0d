"""Shared UI helpers: the cached database, query-parameter state, links, token rendering."""

from __future__ import annotations

import html
from pathlib import Path

import streamlit as st

from backend.database import DatabaseError, ExplorerDB, database_identity, database_path
from backend.params import ParamError, parse_sae_key
from contract.rows import SaeRow
from contract.schema import DEFAULT_SAE_META_KEY, default_sae_key

PAGE_FILES = {"overview": "views/overview.py", "latent": "views/latent.py", "browse": "views/browse.py",
              "letter": "views/letter.py", "token": "views/token.py", "compare": "views/compare.py",
              "live": "views/live.py"}


# Old connections go once a build, merge or migrate has replaced the file (a handful of versions kept, for reruns
# that started before the replacement).
@st.cache_resource(show_spinner=False, max_entries=4)
def db_at(path: str, identity: tuple[int, ...] | None) -> ExplorerDB:
    return ExplorerDB(Path(path))


def _open_db(path: str) -> ExplorerDB:
    """The connection to the file now at `path`: the cache key holds the file's identity (inode, mtime, size), so
    a running server opens the new file on its next rerun once a build has renamed it into place."""
    return db_at(path, database_identity(Path(path)))


def db_version() -> tuple[str, tuple[int, ...] | None]:
    """(path, identity) of the database as it is now: the key of every cached query result."""
    path = database_path()
    return str(path), database_identity(path)


def get_db() -> ExplorerDB:
    """The read-only database, or a clear message and a stop (the page shows it; the sidebar stays quiet)."""
    try:
        return _open_db(str(database_path()))
    except DatabaseError as error:
        st.error(str(error))
        st.stop()


@st.cache_data(show_spinner=False, max_entries=8)
def sae_table(path: str, identity: tuple[int, ...] | None):
    return db_at(path, identity).saes()


def saes_frame():
    get_db()
    return sae_table(*db_version())


def default_sae(frame) -> str:
    """The SAE a URL without `?sae=` opens: the database's choice (meta default_sae), else the same rule applied to
    its SAEs (contract.schema.default_sae_key: the widest at the hook with the most SAEs)."""
    keys = frame["sae_key"].tolist()
    chosen = get_db().meta.get(DEFAULT_SAE_META_KEY)
    if chosen in keys:
        return chosen
    rows = frame[["sae_key", "hook_name", "layer", "d_sae"]].itertuples(index=False, name=None)
    return default_sae_key([(key, hook, whole_or_none(layer), int(d_sae)) for key, hook, layer, d_sae in rows])


def whole_or_none(value) -> int | None:
    """A whole number from a frame cell that may be NULL (NaN or pd.NA)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def current_sae() -> SaeRow:
    """The SAE named by `?sae=` (the database's default SAE when absent); stops with a message when unknown."""
    frame = saes_frame()
    try:
        key = parse_sae_key(st.query_params.get("sae"), frame["sae_key"].tolist(), default_sae(frame))
    except ParamError as error:
        show_param_error(error)
    return SaeRow.from_record(frame.set_index("sae_key", drop=False).loc[key].to_dict())


def show_param_error(error: ParamError) -> None:
    st.error(str(error))
    st.stop()


MATCH_NOTE = "latent_match_note"  # session key: the note the latent page shows once after an SAE switch


def _on_sae_selected() -> None:
    """A latent id means nothing in another SAE: the latent page opens the best match by decoder cosine of the
    latent it showed (where the other SAE is at the same hook), else no latent (the page's default)."""
    old_key, new_key, old_latent = st.query_params.get("sae"), st.session_state["sidebar_sae"], st.query_params.get("latent")
    st.query_params["sae"] = new_key
    match = best_match(old_key, old_latent, new_key)
    if match is None:
        st.query_params.pop("latent", None)
        return
    latent, cosine = match
    st.query_params["latent"] = str(latent)
    st.session_state[MATCH_NOTE] = (f"Latent {latent} is the closest decoder direction in `{new_key}` to latent "
                                    f"{old_latent} of `{old_key}` (cosine {cosine:.2f}).")


def best_match(sae_key: str | None, latent: str | None, other_key: str) -> tuple[int, float] | None:
    """(latent, decoder cosine) of `other_key`'s closest latent to `sae_key`'s `latent`; None when there is none
    stored (another hook, or no latent shown)."""
    if not sae_key or latent is None or not str(latent).isdigit() or sae_key == other_key:
        return None
    try:
        matches = get_db().latent_matches(sae_key, int(latent))
    except Exception:  # noqa: BLE001 - a stale or odd URL falls back to the page's default latent
        return None
    row = matches[matches["other_sae_key"] == other_key]
    if row.empty:
        return None
    return int(row.iloc[0]["other_latent"]), float(row.iloc[0]["cosine"])


def render_sidebar() -> None:
    with st.sidebar:
        try:
            db = _open_db(str(database_path()))
        except DatabaseError:
            return  # the page says what is wrong: one message, not two
        keys = sae_table(*db_version())["sae_key"].tolist()
        if not keys:
            st.warning("The database holds no SAEs.")
            return
        requested = st.query_params.get("sae")
        default = default_sae(sae_table(*db_version()))
        if requested is None:
            st.query_params["sae"] = default  # make the default explicit, so the URL can be shared
        # The URL is the source of truth: the widget follows it (links may have changed it).
        # An unknown ?sae= is reported by the page and not silently rewritten.
        st.session_state["sidebar_sae"] = requested if requested in keys else default
        st.selectbox("SAE", keys, key="sidebar_sae", on_change=_on_sae_selected,
                     help="Every page shows this SAE; the choice is kept in the URL (?sae=).")
        st.caption(f"Database: `{db.path.name}` · schema v{db.meta['schema_version']} · "
                   f"code {db.meta['code_version']} · built {db.meta['created_at'][:10]}")


def redirect_bare_links(current) -> None:
    """`/?sae=..&latent=..` (no page in the path) opens the latent page: the URL alone decides the view."""
    if current.title == "Overview" and "latent" in st.query_params:
        st.switch_page(PAGE_FILES["latent"], query_params=st.query_params.to_dict())


def page_link(target: str, label: str, /, **params: object) -> None:
    """A link to page `target` (a key of PAGE_FILES) with `params` as its query string. `target` and
    `label` are positional-only, so every query-parameter name (`page`, `label`, ...) is free to use."""
    st.page_link(PAGE_FILES[target], label=label, query_params={k: str(v) for k, v in params.items()})


def activation_color(fraction: float) -> str:
    alpha = 0.0 if fraction <= 0 else 0.15 + 0.85 * min(fraction, 1.0)
    return f"rgba(255, 120, 0, {alpha:.2f})"


def context_html(tokens: list[str], activations: list[float], max_act: float, highlight_index: int) -> str:
    """One context as HTML: each token a span coloured by the latent's activation on it."""
    spans = []
    for i, (token, act) in enumerate(zip(tokens, activations)):
        text = html.escape(token).replace("\n", "⏎").replace(" ", "&nbsp;") or "∅"
        classes = "tok" + (" act" if act > 0 else "") + (" peak" if i == highlight_index else "")
        style = f"background:{activation_color(act / max_act if max_act else 0)};"
        if i == highlight_index:
            style += "border-bottom:2px solid #c00;font-weight:600;"
        if token.startswith("<|") and token.endswith("|>"):
            style += "color:#999;font-style:italic;"  # special tokens (document separators)
        spans.append(f'<span class="{classes}" style="{style}" title="{act:.3f}">{text}</span>')
    # Zero-width spaces between tokens let a long context wrap instead of hiding its peak.
    return ('<div class="ctx" style="font-family:monospace;font-size:0.85em;line-height:1.8">'
            f'{"&#8203;".join(spans)}</div>')
