"""absorption-explorer: page config, navigation and the shared sidebar."""

from __future__ import annotations

import streamlit as st

from views import common

st.set_page_config(page_title="absorption-explorer", page_icon=":material/manage_search:", layout="wide")

navigation = st.navigation([
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview", default=True),
    st.Page("views/latent.py", title="Latent", icon=":material/biotech:", url_path="latent"),
    st.Page("views/browse.py", title="Browse", icon=":material/search:", url_path="browse"),
    st.Page("views/letter.py", title="Feature", icon=":material/match_case:", url_path="letter"),
    st.Page("views/token.py", title="Token search", icon=":material/spellcheck:", url_path="token"),
    st.Page("views/compare.py", title="Compare SAEs", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("views/live.py", title="Live text", icon=":material/keyboard:", url_path="live"),
])
common.redirect_bare_links(navigation)
common.render_sidebar()
navigation.run()
