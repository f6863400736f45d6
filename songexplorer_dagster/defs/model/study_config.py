"""Run configuration of ``model_study``: the Launchpad's study settings."""

from typing import Literal

from pydantic import Field

from songexplorer_core.studies.plan import KINDS, OMIT
from songexplorer_dagster.defs.model.config import TrainingConfig


class StudyConfig(TrainingConfig):
    """A study: the base training (every ``TrainingConfig`` field: a recipe, any setting
    overridden) and what varies (docs/studies.md).

    Examples (Launchpad YAML under ``ops: model_study: config:``): ``{kind: xvalidate, folds: 5}``;
    ``{kind: generalize, omit: one}``; ``{kind: sweep, vary: {learning_rate: ["0.001", "0.01"],
    kernel_sizes: ["5x5,3", "3x3,3"]}, folds: 3}`` (a sweep of 3-fold x-validations);
    ``{kind: replicates, replicates: 4}``; ``{kind: learning-curve, fractions: [0.25, 0.5, 1.0]}``.
    """

    kind: Literal[KINDS] = Field(default="xvalidate", description="xvalidate, generalize, sweep, replicates or "
                                 "learning-curve.")
    folds: int | None = Field(default=None, description="xvalidate: folds (5 when empty; negative trains on one "
                              "fold). sweep: x-validate every setting with this many folds (empty: no).")
    omit: Literal[OMIT] = Field(default="one", description="generalize: withhold each recording in turn ('one') "
                                "or train on one at a time ('all-but-one').")
    groups: int | None = Field(default=None, description="generalize: withhold recordings in this many round-robin "
                               "groups instead.")
    vary: dict[str, list[str]] = Field(default={}, description="sweep: parameter -> values (TrainConfig settings, "
                                       "model.<field> or a model field's name).")
    replicates: int = Field(default=3, description="replicates: trainings with seeds seed, seed+1, ...")
    fractions: list[float] = Field(default=[0.1, 0.2, 0.4, 0.7, 1.0],
                                   description="learning-curve: fractions of the training annotations.")
    workers: int | None = Field(default=None, description="Trainings side by side (empty: the cores / 2).")
    name: str = Field(default="", description="Study folder under outputs/studies/ (empty: kind and UTC time).")

    def trials(self, ground, base):
        """The study's trials (``songexplorer_core.studies``); ``StudyError`` names bad input."""
        from songexplorer_core import studies as S

        if self.kind == "xvalidate":
            return S.xvalidate(ground, base, self.folds or 5)
        if self.kind == "generalize":
            return S.generalize(ground, base, omit=self.omit, groups=self.groups)
        if self.kind == "replicates":
            return S.replicates(base, self.replicates)
        if self.kind == "learning-curve":
            return S.learning_curve(ground, base, self.fractions)
        trials = S.sweep(base, {k: [S.plan.parse_value(v) for v in values] for k, values in self.vary.items()})
        if self.folds:
            trials = S.compose(trials, lambda config: S.xvalidate(ground, config, self.folds))
        return trials
