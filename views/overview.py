"""Overview: the SAEs in the database and their statistics."""

import streamlit as st

from views import common

st.title("SAEs in this database")
db = common.get_db()
frame = common.saes_frame()
if frame.empty:
    st.info("This database holds no SAEs yet. Add one with `python -m precompute build --sae ...`.")
    st.stop()

st.caption(
    "Each SAE was run over the same held-out corpus tokens; explained variance, L0 and dead latents are "
    "measured there by the precompute (`python -m precompute build`)."
)
shown = frame[["sae_key", "model_name", "hook_name", "architecture", "d_sae", "l0", "explained_variance",
               "dead_fraction", "n_tokens", "source"]].rename(columns={
    "sae_key": "SAE", "model_name": "model", "hook_name": "hook", "d_sae": "width", "l0": "L0",
    "explained_variance": "explained variance", "dead_fraction": "dead fraction", "n_tokens": "tokens"})
st.dataframe(shown, hide_index=True, width="stretch",
             column_config={"explained variance": st.column_config.NumberColumn(format="%.3f"),
                            "L0": st.column_config.NumberColumn(format="%.1f"),
                            "dead fraction": st.column_config.NumberColumn(format="%.3f")})

for sae in frame.to_dict("records"):
    with st.container(border=True):
        st.subheader(sae["sae_key"])
        cols = st.columns(5)
        cols[0].metric("width", f"{sae['d_sae']:,}")
        cols[1].metric("L0", f"{sae['l0']:.1f}")
        cols[2].metric("explained variance", f"{sae['explained_variance']:.3f}")
        cols[3].metric("dead latents", f"{sae['n_dead']:,}", help=f"{sae['dead_fraction']:.1%} never fired")
        cols[4].metric("tokens measured", f"{sae['n_tokens']:,}")
        origin = sae["path"] if sae["source"] == "local" else f"{sae['release']} / {sae['sae_id']}"
        st.caption(f"`{sae['hook_name']}` on `{sae['model_name']}` · {sae['architecture']} · from `{origin}` · "
                   f"corpus `{sae['corpus']}`")
        link_cols = st.columns(2)
        with link_cols[0]:
            common.page_link("latent", "Open latent 0 →", sae=sae["sae_key"], latent=0)
        with link_cols[1]:
            common.page_link("browse", "Browse latents →", sae=sae["sae_key"])
