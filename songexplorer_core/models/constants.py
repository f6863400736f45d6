"""File names, choices and constants shared by the models subpackage, and :class:`ModelError`."""

#: Version of the ``model.json`` layout written by :func:`save_trained_model`.
MODEL_FORMAT = "songexplorer-dagster model 1"
MODEL_FILE = "model.keras"
METADATA_FILE = "model.json"

REPRESENTATIONS = ("waveform", "spectrogram", "spectrogram-with-phase", "mel-cepstrum")
CONNECTIONS = ("plain", "residual")
DROPOUT_KINDS = ("unit", "map")
POOL_KINDS = ("none", "max", "average")
NORMALIZATIONS = ("none", "batch before ReLU", "batch after ReLU")
LOSSES = ("exclusive", "overlapped")

#: Added to mel power before the logarithm, as SongExplorer does.
LOG_OFFSET = 1e-6


class ModelError(ValueError):
    """A model specification, folder or file cannot be used; the message says which and why."""


