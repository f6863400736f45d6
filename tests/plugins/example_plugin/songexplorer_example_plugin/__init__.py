"""Example plug-ins, one per seam of songexplorer-dagster (docs/plugins.md).

* ``example-raw`` (audio reader): ``.f32raw`` files, interleaved little-endian float32 samples
  at full scale 1.0, with no header: the rate (Hz) and channels are the reader's options.
* ``example-loud`` (detector): every run of tics whose magnitude exceeds ``threshold`` (int16
  units, default 1000) on any channel, label ``loud``.
* ``example-tiny`` (architecture): SongExplorer's convolutional network with one layer of four
  feature maps.
* ``example-half`` (ethogram method): every run of samples whose probability exceeds 0.5.
* ``example-range`` (double-click action): ``width_ms`` (default 4 ms) centred on the click.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from songexplorer_core.annotations import intervals_frame
from songexplorer_core.audio_readers import AudioHeader
from songexplorer_core.detect import mask_runs
from songexplorer_core.ethogram import ethogram_threshold
from songexplorer_core.models import build_convolutional


class RawReader:
    """Headerless float32 recordings (``.f32raw``)."""

    extensions = (".f32raw",)

    def __init__(self, rate: int = 2500, channels: int = 1):
        self.rate, self.channels = int(rate), int(channels)

    def info(self, path: Path) -> AudioHeader:
        frames = Path(path).stat().st_size // (4 * self.channels)
        return AudioHeader(rate=self.rate, channels=self.channels, frames=frames, subtype="FLOAT")

    def read(self, path: Path, start_tic: int, stop_tic: int) -> np.ndarray:
        data = np.memmap(path, dtype="<f4", mode="r").reshape(-1, self.channels)
        return np.array(data[start_tic:stop_tic], dtype=np.float64)


def loud(samples: np.ndarray, rate: int, *, wav: str, parameters: dict) -> "pd.DataFrame":
    threshold = float(parameters.get("threshold", 1000))
    runs = mask_runs(np.abs(samples.astype(np.int64)).max(axis=1) > threshold)
    return intervals_frame(wav, runs[:, 0], runs[:, 1] - 1, "detected", "loud")  # inclusive stops


def build_tiny(spec, *, labels, rate, nchannels=1, seed=None):
    tiny = dataclasses.replace(spec, nconvlayers=1, nfeatures=(4, 4))
    return build_convolutional(tiny, labels=labels, rate=rate, nchannels=nchannels, seed=seed)


def half(probs, thresholds, *, wav=None, **_):
    return ethogram_threshold(probs, {label: 0.5 for label in thresholds}, wav=wav)


def around(read, tic, rate, parameters):
    half_width = int(float(parameters.get("width_ms", 4)) / 1000 * rate / 2)
    return tic - half_width, tic + half_width
