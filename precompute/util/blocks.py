"""Blocks over latents: whatever is dense over the latents of an SAE ([rows, d_sae] codes, [rows, d_sae]
cosines) is computed a block of rows at a time, the block sized so that it holds at most
MAX_BLOCK_ELEMENTS values. Peak memory then stays O(MAX_BLOCK_ELEMENTS) however wide the SAE is: a
262,144-latent SAE encodes 128 tokens at a time, a 4,096-latent one 8,192."""

from __future__ import annotations

MAX_BLOCK_ELEMENTS = 1 << 25  # 32 M float32 values = 128 MiB per dense block over latents


def rows_per_block(width: int, max_elements: int = MAX_BLOCK_ELEMENTS, cap: int | None = None) -> int:
    """Rows of a [rows, width] block that fit max_elements (at least one; at most cap)."""
    rows = max(1, max_elements // max(width, 1))
    return rows if cap is None else min(rows, cap)


def row_blocks(n_rows: int, width: int, max_elements: int = MAX_BLOCK_ELEMENTS, cap: int | None = None) -> list[slice]:
    """Consecutive row slices covering n_rows, each a block of rows_per_block rows."""
    step = rows_per_block(width, max_elements, cap)
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]
