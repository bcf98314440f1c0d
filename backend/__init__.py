"""Pure-Python data access for the explorer (no streamlit import)."""
