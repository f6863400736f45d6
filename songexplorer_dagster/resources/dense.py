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

The dense annotators are named here (``dense_annotators``), else by ``$SONGEXPLORER_DENSE_ANNOTATORS``,
else by the project's ``songexplorer.toml`` (``dense_annotators = ["person2"]``; the demo project
names its own).

Dense annotations are a test set, so by default they are kept out of training
(``held_out_of_training``): ``ground_truth``, and so every model, leaves them out, and the
congruence report and the gate measure how a model does on sounds it never learnt from.
SongExplorer trained on whatever was annotated; ``held_out_of_training="none"`` does that.
"""

import os
from typing import Literal

import dagster as dg
from pydantic import Field

import pandas as pd

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
            "Empty: $SONGEXPLORER_DENSE_ANNOTATORS (comma-separated), else the project's songexplorer.toml "
            "dense_annotators; none anywhere: no dense set (the congruence report compares nothing, the promotion "
            "gate is skipped)."
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

    held_out_of_training: Literal["annotations", "recordings", "none"] = Field(
        default="annotations",
        description="What ground_truth keeps out of training: 'annotations' (the dense annotators' files of the "
                    "dense recordings), 'recordings' (every annotation of the dense recordings, anyone's), or "
                    "'none' (dense annotations train too, as in SongExplorer: scores then measure fit, not "
                    "generalisation).",
    )

    def annotators(self, project) -> list[str]:
        """The dense annotators: this resource's, else the project's ``songexplorer.toml``'s
        (``project``: a ``ProjectResource``)."""
        if self.dense_annotators:
            return list(self.dense_annotators)
        return list(project.settings().dense_annotators)

    def is_configured(self, project) -> bool:
        """Whether any dense annotator is named (here or in the project's settings)."""
        return bool(self.annotators(project))

    def held_out(self, annotations: pd.DataFrame, project) -> pd.Series:
        """Which rows of an annotation table (columns ``annotator`` and ``recording``, the
        recording key) ``ground_truth`` keeps out of training, by ``held_out_of_training``."""
        names = set(self.annotators(project))
        if self.held_out_of_training == "none" or not names or not len(annotations):
            return pd.Series(False, index=annotations.index)
        dense_rows = annotations["annotator"].isin(names)
        if self.dense_recordings:
            dense_rows &= annotations["recording"].isin(set(self.dense_recordings))
        if self.held_out_of_training == "annotations":
            return dense_rows
        return annotations["recording"].isin(set(annotations.loc[dense_rows, "recording"]))

    def congruence_settings(self) -> dict:
        """Keyword arguments of ``songexplorer_core.congruence.congruence`` (rate excluded)."""
        return {"portion": self.portion, "convolve_s": float(self.convolve_s), "span": self.span,
                "absent_annotators": self.absent_annotators}
