"""Absorption metrics, for every task of tasks.py (see ../shared/reference/absorption-metrics.md).

So far: the SAEBench probe-projection metric and split-latent selection, as pure vectorised
functions. The probe, prompts, k-sparse probing and the paper's ablation metric build on these."""
