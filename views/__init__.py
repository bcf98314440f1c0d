"""The explorer's pages, one file per view, run by `st.navigation` in app.py.

Not named `pages/`: Streamlit treats a `pages/` folder next to the entry script as a legacy
multipage app, and the first visit to a deep link (e.g. /latent?sae=..) on a fresh server then runs
the page file alone, without app.py's navigation and sidebar."""
