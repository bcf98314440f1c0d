"""The DDL's fixed-length arrays and the constants the writer and the views use agree."""

from __future__ import annotations

import duckdb

from contract.schema import HIST_BINS, N_LOGITS, N_NEIGHBORS, ddl_statements


def column_types(table: str) -> dict[str, str]:
    con = duckdb.connect()
    for statement in ddl_statements():
        con.execute(statement)
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                       [table]).fetchall()
    con.close()
    return dict(rows)


def test_latent_arrays_have_the_lengths_the_dashboards_write():
    types = column_types("latents")
    assert types["hist_counts"] == f"INTEGER[{HIST_BINS}]"
    for column in ("top_logit_ids", "bottom_logit_ids"):
        assert types[column] == f"INTEGER[{N_LOGITS}]"
    assert types["neighbor_ids"] == f"INTEGER[{N_NEIGHBORS}]"
    assert types["neighbor_cosines"] == f"FLOAT[{N_NEIGHBORS}]"


def test_letter_cosines_hold_a_list_per_class_and_block_of_latents():
    types = column_types("latent_letter_cos")
    assert types["decoder_cos"] == types["encoder_cos"] == "SMALLINT[]"  # one value per latent of the block
    assert {"class_index", "first_latent"} <= set(types) and "letter" not in types and "latent" not in types


def test_the_default_sae_is_the_widest_at_the_hook_with_the_most_saes():
    from contract.schema import default_sae_key

    saes = [("a-l2", "blocks.2.r", 2, 4096), ("b-l6", "blocks.6.r", 6, 1024), ("c-l6", "blocks.6.r", 6, 4096),
            ("d-l6", "blocks.6.r", 6, 4096), ("e-l12", "blocks.12.r", 12, 65536)]
    assert default_sae_key(saes) == "c-l6"  # blocks.6 has 3 SAEs; c and d are its widest; c comes first
    assert default_sae_key(saes[:1] + saes[-1:]) == "a-l2"  # one SAE each: the earlier layer
    assert default_sae_key([]) is None
