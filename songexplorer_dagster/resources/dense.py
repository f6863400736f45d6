"""Which recordings are densely annotated, and how the congruence with them is measured.

A recording counts as densely annotated when it has an annotation file by one of the
``dense_annotators``: ``<wav>-annotated-<name>.csv`` (either SongExplorer naming style) beside it
in ``groundtruth/``. People are named, not recordings, because dense annotation is a job someone
does on purpose (SongExplorer's "test densely" workflow renames such files
``...-annotated-<name>.csv``), while the sparse seed annotations of the same recording may come
from others. ``dense_recordings`` optionally narrows the set to some recording keys.

The same settings drive the ``congruence_report`` asset and the promotion gate on
``trained_model`` (a resource, so both always agree). With no ``dense_annotators`` the report
has nothing to compare and the gate is skipped.

Dense annotation files are annotations like any other: ``ground_truth`` (and so the next
training) reads them too, so later models are scored on sounds they learnt from (fit rather than
generalisation); there is no filter yet that keeps a dense annotator out of the ground truth.
"""

import os
from typing import Literal

import dagster as dg
from pydantic import Field

from songexplorer_core.promotion import DEFAULT_TOLERANCE

DENSE_ANNOTATORS_ENV = "SONGEXPLORER_DENSE_ANNOTATORS"


def default_dense_annotators() -> list[str]:
    """``$SONGEXPLORER_DENSE_ANNOTATORS`` split at commas (empty: no dense set)."""
    return [name.strip() for name in os.environ.get(DENSE_ANNOTATORS_ENV, "").split(",") if name.strip()]


class DenseSetResource(dg.ConfigurableResource):
    """The densely annotated recordings and the congruence settings (SongExplorer's names)."""

    dense_annotators: list[str] = Field(
        default_factory=default_dense_annotators,
        description=(
            "Annotators whose <wav>-annotated-<name>.csv files are dense annotations, e.g. ['person2']. "
            "Empty: no dense set (the congruence report compares nothing, the promotion gate is skipped). "
            "Defaults to $SONGEXPLORER_DENSE_ANNOTATORS (comma-separated)."
        ),
    )
    dense_recordings: list[str] = Field(
        default=[],
        description="Only these recording keys (e.g. 'round2%2FPS.wav'); empty = every recording they annotated.",
    )
    portion: Literal["union", "intersection"] = Field(default="union",
                         description="'union' or 'intersection' of the annotators' annotated spans.")
    convolve_s: float = Field(
        default=0.0, description="Tolerance, seconds: every interval is widened by this/2 at both ends first."
    )
    span: Literal["annotations", "label"] = Field(
        default="annotations",
        description="'annotations': a recording's annotated stretch spans every label; 'label': per label "
                    "(SongExplorer).",
    )
    absent_annotators: Literal["empty", "skip"] = Field(
        default="empty",
        description="'empty': an annotator with nothing in a recording marked nothing there; 'skip': compare "
                    "each recording among the people who annotated it.",
    )
    measure: Literal["label", "tic"] = Field(
        default="label",
        description="Level of the headline scores and of the gate: 'label' (events) or 'tic' (samples).",
    )
    reference: str = Field(
        default="songexplorer",
        description="Whose marks are the truth: 'songexplorer' (SongExplorer's definition), an annotator's name, "
                    "'union' or 'intersection'.",
    )
    nprobabilities: int = Field(default=20, description="Thresholds in the report's sweep (0 = no sweep).")
    error_ratio: float = Field(default=1.0, description="Precision/recall ratio of the dense thresholds.")
    ratio: str = Field(
        default="",
        description="Which P/R ratio's ethogram to score (e.g. '1.0pr'); empty = the model's first.",
    )
    promotion_tolerance: float = Field(
        default=DEFAULT_TOLERANCE,
        description="The gate refuses a new model whose F1 on any label of the dense set is lower than the "
                    "champion's by more than this (0.02 = two points).",
    )

    @property
    def configured(self) -> bool:
        """Whether any dense annotator is named."""
        return bool(self.dense_annotators)

    def congruence_settings(self) -> dict:
        """Keyword arguments of ``songexplorer_core.congruence.congruence`` (rate excluded)."""
        return {"portion": self.portion, "convolve_s": float(self.convolve_s), "span": self.span,
                "absent_annotators": self.absent_annotators}
