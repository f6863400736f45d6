"""Run configuration of the ``model`` group: the Launchpad's training settings."""

from typing import Literal

import dagster as dg
from pydantic import Field, field_validator

from songexplorer_core.labels import check_labels
from songexplorer_core.recipes import RECIPE_NAMES, TUTORIAL_SETTINGS, named_recipe_config

#: TrainingConfig fields that are TrainConfig settings / ModelSpec fields.
_TRAINING_FIELDS = ("kinds_to_use", "nsteps", "validate_period", "save_period", "validate_percentage", "mini_batch",
                    "learning_rate", "optimizer", "loss", "negatives", "parallelize", "batch_seed", "weights_seed", "nreplicates")
_MODEL_FIELDS = ("architecture", "representation", "context_ms", "shiftby_ms", "window_ms", "stride_ms", "mel_dct", "nconvlayers",
                 "kernel_sizes", "nfeatures", "stride_time", "dilate_time", "connection", "dropout_rate", "normalization")


class TrainingConfig(dg.Config):
    """Training hyperparameters: a recipe, and any of its settings overridden.

    ``recipe="default"`` is this project's recipe (``songexplorer_core.recipes.DEFAULT_RECIPE``:
    1000 steps at learning rate 0.001, validated at the end, checkpoints every 100, dropout 0.2,
    8 taps per example; chosen on dense truth, docs/recipe.md); ``"tutorial"`` is SongExplorer's
    tutorial training (300 steps at 0.0002, validated every 30, dropout 0.5, 2 taps). A field left
    empty takes the recipe's value; the values used are logged to MLflow as the run's params.

    Model parameters use SongExplorer's GUI forms: kernel sizes ``"5x5,3"``, feature maps
    ``"64,64"``, layer lists ``"1,3"`` or ``"1-3"``, times in ms, frequencies in Hz.
    """

    recipe: Literal[RECIPE_NAMES] = Field(
        default="default", description="'default' (this project's) or 'tutorial' (SongExplorer's).")
    labels_to_use: list[str] = Field(
        default=[], description="Labels to learn, in output order; empty = every label in the ground truth."
    )
    kinds_to_use: list[str] | None = Field(default=None, description="Kinds of intervals to learn from (annotated).")
    nsteps: int | None = Field(default=None, description="Training steps (mini-batches): default 1000, tutorial 300.")
    validate_period: int | None = Field(
        default=None, description="Validate every this many steps (0: at the end only): default 1000, tutorial 30.")
    save_period: int | None = Field(
        default=None, description="Checkpoint every this many steps: default 100, tutorial = validate_period.")
    validate_percentage: float | None = Field(default=None, description="Percent of annotations held out (40).")
    mini_batch: int | None = Field(default=None, description="Examples per step (32).")
    learning_rate: float | None = Field(
        default=None, description="Learning rate: default 0.001, tutorial 0.0002; with start_from the recipe's "
                                  "times 0.2.")
    optimizer: str | None = Field(
        default=None, description="Adam (both recipes), Adadelta, Adagrad, Adamax, Ftrl, Nadam, RMSprop or SGD.")
    loss: str | None = Field(default=None, description="'exclusive' (one label per tic) or 'overlapped' (not_ labels).")
    negatives: bool | None = Field(
        default=None, description="Exclusive loss: learn from not_<label> ranges (notsong CSVs) as sounds that are "
        "not that label: default on, tutorial off (SongExplorer ignores them).")
    parallelize: int | None = Field(default=None, description="Output taps per training example: default 8, tutorial 2.")
    batch_seed: int | None = Field(default=None, description="Seed of batches and augmentation (1); -1 = random.")
    weights_seed: int | None = Field(default=None, description="Seed of the initial weights (1); -1 = random.")
    nreplicates: int | None = Field(default=None, description="Models trained with the same settings; the best is kept (1).")
    precision_recall_ratios: list[float] = Field(
        default=[1.0], description="P/R ratios to compute thresholds for (1.0: precision = recall)."
    )
    # the network (songexplorer_core.models.ModelSpec); empty = the recipe's (SongExplorer's defaults)
    architecture: str | None = Field(
        default=None, description="Network by name: 'convolutional' (SongExplorer's res-net), or an installed "
        "architecture plug-in (songexplorer.architectures: `songexplorer plugins`).")
    representation: str | None = Field(default=None, description="waveform, spectrogram or mel-cepstrum.")
    context_ms: float | None = Field(default=None, description="Audio seen per decision, ms (204.8).")
    shiftby_ms: float | None = Field(default=None, description="Asymmetry of the context window, ms (0).")
    window_ms: float | None = Field(default=None, description="Spectrogram frame, ms (6.4).")
    stride_ms: float | None = Field(default=None, description="Spectrogram hop, ms (1.6).")
    mel_dct: str | None = Field(default=None, description="Mel filters, DCT coefficients kept (7,7).")
    nconvlayers: int | None = Field(default=None, description="Convolutional layers (2).")
    kernel_sizes: str | None = Field(default=None, description="2-D kernel (time x freq), then 1-D width (5x5,3).")
    nfeatures: str | None = Field(default=None, description="Feature maps of the 2-D and 1-D stages (64,64).")
    stride_time: str | None = Field(default=None, description="Conv layers striding in time (1-based; none).")
    dilate_time: str | None = Field(default=None, description="Conv layers from which time dilation doubles (none).")
    connection: str | None = Field(default=None, description="'plain' or 'residual'.")
    dropout_rate: float | None = Field(default=None, description="Dropout fraction: default 0.2, tutorial 0.5.")
    normalization: str | None = Field(default=None, description="'none', 'batch before ReLU' or 'batch after ReLU'.")
    # transfer learning (songexplorer_core.transfer): the network is the parent's
    start_from: str | None = Field(
        default=None, description="Start from another model's layers: a version of this project's model ('3', "
        "'champion'), an MLflow URI (models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID) or a model folder "
        "(another project's). Its network is used, with a new output layer for these labels.")
    train_layers: list[str] | None = Field(
        default=None, description="With start_from: the layers to train (conv1, conv2, ..., dense1, ..., output); "
        "the others keep the parent's weights. Empty: all.")
    freeze: int | None = Field(
        default=None, description="With start_from: keep the first N layers with weights as the parent's.")

    @field_validator("labels_to_use")
    @classmethod
    def _labels_are_names(cls, value: list[str]) -> list[str]:
        """Labels become labels.txt and file names: names, never paths (a bad one fails the run
        at its start, naming the field)."""
        return list(check_labels(value, where="labels_to_use"))

    def overrides(self) -> dict:
        """The settings given here (not left to the recipe), as ``recipes.recipe_config`` takes them."""
        chosen = {name: getattr(self, name) for name in _TRAINING_FIELDS if getattr(self, name) is not None}
        for seed in ("batch_seed", "weights_seed"):
            if chosen.get(seed) == -1:  # SongExplorer's "random"
                chosen[seed] = None
        if "kinds_to_use" in chosen:
            chosen["kinds_to_use"] = tuple(chosen["kinds_to_use"])
        model = {name: getattr(self, name) for name in _MODEL_FIELDS if getattr(self, name) is not None}
        if model:
            chosen["model"] = model
        return chosen

    def train_config(self, labels):
        """The ``TrainConfig`` for ``labels``: the recipe, then the fields given here.

        Raises:
            songexplorer_core.train.TrainError: an unknown recipe or a bad value.
        """
        return named_recipe_config(self.recipe, tuple(labels), **self.overrides())

    def kinds(self) -> tuple[str, ...]:
        """Kinds of intervals to learn from (the recipe's unless given)."""
        return tuple(self.kinds_to_use) if self.kinds_to_use is not None else tuple(TUTORIAL_SETTINGS["kinds_to_use"])
