"""SAEs: the list, one SAE, comparing SAEs, ground truth (toy runs) and probe-free scores per SAE (ExplorerDB's reads on this subject; backend/database.py composes them)."""

from __future__ import annotations

import pandas as pd

from backend import queries as q
from backend.connection import Reader
from backend.scores import ScoreValidation, validation_from_row
from contract.rows import SaeRow, plain_row
from contract.schema import (
    DEFAULT_TASK,
)


class SaeReads(Reader):
    """SAEs: the list, one SAE, comparing SAEs, ground truth (toy runs) and probe-free scores per SAE."""

    def saes(self) -> pd.DataFrame:
        return self._frame(q.LIST_SAES)

    def sae_keys(self) -> list[str]:
        return self.saes()["sae_key"].tolist()

    def sae(self, sae_key: str) -> SaeRow | None:
        frame = self._frame(q.GET_SAE, [sae_key])
        return None if frame.empty else SaeRow.from_record(frame.iloc[0].to_dict())

    def sae_comparison(self, task: str = DEFAULT_TASK) -> pd.DataFrame:
        """One row per SAE: dashboard metrics, and headline absorption numbers on the task (NaN where not
        measured)."""
        return self._frame(q.COMPARE_SAES, [task])

    def has_truth(self, sae_key: str) -> bool:
        """The SAE reads a toy model whose true features are in the database."""
        return self.has_table("truth_latents") and bool(self._rows(q.HAS_TRUTH, [sae_key])[0][0])

    def truth_features(self, sae_key: str) -> pd.DataFrame:
        return self._frame(q.TRUTH_FEATURES, [sae_key])

    def truth_latents(self, sae_key: str) -> pd.DataFrame:
        return self._frame(q.TRUTH_LATENTS, [sae_key])

    def truth_verdict_counts(self, sae_key: str, task: str) -> pd.DataFrame:
        return self._frame(q.TRUTH_VERDICT_COUNTS, [sae_key, task])

    def scored_sae_keys(self) -> list[str]:
        """SAEs with probe-free scores (the build could load their weights)."""
        return [row[0] for row in self._rows(q.SCORED_SAES)]

    def score_validation(self, sae_key: str, task: str = DEFAULT_TASK) -> list[ScoreValidation]:
        """How each score ranked this SAE's probe-found absorbers of the task ([] without absorption results)."""
        return [validation_from_row(plain_row(row)) for row in
                self._frame(q.SCORE_VALIDATION, [sae_key, task]).to_dict("records")]
