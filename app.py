"""absorption-explorer: page config, navigation and the shared sidebar."""

from __future__ import annotations

import streamlit as st

from pages import common

st.set_page_config(page_title="absorption-explorer", page_icon="🔎", layout="wide")

navigation = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon="🗂️", url_path="overview", default=True),
    st.Page("pages/latent.py", title="Latent", icon="🔬", url_path="latent"),
    st.Page("pages/browse.py", title="Browse", icon="🔍", url_path="browse"),
])
common.redirect_bare_links(navigation)
common.render_sidebar()
navigation.run()
