"""Sizes in messages and estimates, shared by the build's preflight and the writer."""

from __future__ import annotations

FIXED_BYTES = 8 << 20  # a build's space beside its latents: vocabulary, corpus rows, probe runs, write-ahead log


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"
