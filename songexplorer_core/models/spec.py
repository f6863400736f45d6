"""The network's parameters: :class:`ModelSpec` (SongExplorer's ``res-net`` plug-in settings, times
in ms) and how its layer lists parse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from songexplorer_core.models.constants import CONNECTIONS, DROPOUT_KINDS, ModelError, NORMALIZATIONS, POOL_KINDS, REPRESENTATIONS

# ---------------------------------------------------------------------------------------------
# parameters


def parse_layers(text: str | Iterable[int] | None, nconvlayers: int) -> tuple[int, ...]:
    """Parse SongExplorer's layer-list syntax (1-based conv layer numbers).

    ``"1,3"``, ``"1-3"``, ``"<=3"``, ``">=5"``, ``"<3"``, ``">5"`` and combinations separated by
    commas; ``""`` is no layer. Numbers above ``nconvlayers`` are dropped (as SongExplorer does).
    An iterable of integers is accepted as is.
    """
    if text is None:
        return ()
    if not isinstance(text, str):
        layers = [int(x) for x in text]
    else:
        layers = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                if part.startswith("<="):
                    layers.extend(range(1, int(part[2:]) + 1))
                elif part.startswith(">="):
                    layers.extend(range(int(part[2:]), nconvlayers + 1))
                elif part.startswith("<"):
                    layers.extend(range(1, int(part[1:])))
                elif part.startswith(">"):
                    layers.extend(range(int(part[1:]) + 1, nconvlayers + 1))
                elif "-" in part:
                    lo, hi = part.split("-")
                    layers.extend(range(int(lo), int(hi) + 1))
                else:
                    layers.append(int(part))
            except ValueError as error:
                raise ModelError(
                    f"layer list {text!r}: cannot read {part!r}; use 1-based layer numbers like "
                    f"'1,3', '1-3', '<=3' or '>=5'"
                ) from error
    if any(x < 1 for x in layers):
        raise ModelError(f"layer list {text!r}: layer numbers are 1-based (got {sorted(layers)})")
    return tuple(sorted({x for x in layers if x <= nconvlayers}))


def _pair(value, name: str, cast=int) -> tuple:
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,x]", value) if p.strip()]
    else:
        parts = list(value)
    if len(parts) != 2:
        raise ModelError(f"{name} must be two numbers, like '7,7' (got {value!r})")
    return tuple(cast(p) for p in parts)


def _kernel_sizes(value) -> tuple[tuple[int, int], int]:
    """``"5x5,3"`` or ``((5, 5), 3)`` -> ``((5, 5), 3)``: the 2-D kernel (time x freq) and the
    time width of the pan-frequency kernel."""
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) != 2:
            raise ModelError(f"kernel_sizes must look like '5x5,3' (got {value!r})")
        first, second = parts
        first = _pair(first, "the 2-D kernel size") if "x" in first else (int(first), int(first))
        return first, int(second)
    first, second = value
    if isinstance(first, (int, np.integer)):
        first = (int(first), int(first))
    return (int(first[0]), int(first[1])), int(second)


@dataclass(frozen=True)
class ModelSpec:
    """Every architecture parameter of SongExplorer's convolutional network, with its defaults.

    Times are in milliseconds and frequencies in Hz, as in SongExplorer's GUI; tics are derived
    with the recording's rate (:meth:`context_tics`, :meth:`stride_tics`, ...).

    Attributes:
        architecture: registered architecture name (``"convolutional"``, alias ``"res-net"``).
        representation: ``waveform``, ``spectrogram``, ``spectrogram-with-phase`` or ``mel-cepstrum``.
        window_ms: STFT frame length, ms; must be a power of two in tics (6.4 ms = 16 tics).
        stride_ms: STFT hop, ms (1.6 ms = 4 tics).
        mel_dct: number of mel filters, number of DCT coefficients kept (mel-cepstrum only).
        range_hz: ``(low, high)`` band kept from the spectrogram, Hz; ``None`` keeps all.
        nconvlayers: maximum number of convolutional layers.
        kernel_sizes: ``((time, freq), time)``: the 2-D kernel, then the pan-frequency kernel's width.
        nfeatures: feature maps of the 2-D stage and of the pan-frequency stage.
        stride_time, stride_freq: 1-based conv layers with stride 2 in time / frequency.
        dilate_time, dilate_freq: 1-based conv layers from which the dilation doubles.
        pool_kind: ``none``, ``max`` or ``average`` pooling after the convolutions.
        pool_size: ``(time, freq)`` pool size (= pool stride).
        denselayers: units of extra "dense" layers before the output.
        connection: ``plain`` or ``residual``.
        dropout_kind: ``unit`` (``Dropout``) or ``map`` (``SpatialDropout2D``, whole feature maps).
        dropout_rate: fraction dropped after the last conv layer and between dense layers (0.5 = 50 %).
        normalization: ``none``, ``batch before ReLU`` or ``batch after ReLU``.
        context_ms: audio seen for one decision, ms (204.8 ms = 512 tics at 2500 Hz).
        shiftby_ms: how far the labelled point lies after the window's centre, ms
            (positive = more audio before the point).
    """

    architecture: str = "convolutional"
    representation: str = "mel-cepstrum"
    window_ms: float = 6.4
    stride_ms: float = 1.6
    mel_dct: tuple[int, int] = (7, 7)
    range_hz: tuple[float, float] | None = None
    nconvlayers: int = 2
    kernel_sizes: tuple[tuple[int, int], int] = ((5, 5), 3)
    nfeatures: tuple[int, int] = (64, 64)
    stride_time: tuple[int, ...] = ()
    stride_freq: tuple[int, ...] = ()
    dilate_time: tuple[int, ...] = ()
    dilate_freq: tuple[int, ...] = ()
    pool_kind: str = "none"
    pool_size: tuple[int, int] = (2, 2)
    denselayers: tuple[int, ...] = ()
    connection: str = "plain"
    dropout_kind: str = "unit"
    dropout_rate: float = 0.5
    normalization: str = "none"
    context_ms: float = 204.8
    shiftby_ms: float = 0.0

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("nconvlayers", int(self.nconvlayers))
        set_("mel_dct", _pair(self.mel_dct, "mel_dct"))
        if self.range_hz is not None and self.range_hz != "":
            lo_hi = self.range_hz.split("-") if isinstance(self.range_hz, str) else self.range_hz
            set_("range_hz", _pair(lo_hi, "range_hz", float))
        else:
            set_("range_hz", None)
        set_("kernel_sizes", _kernel_sizes(self.kernel_sizes))
        set_("nfeatures", _pair(self.nfeatures, "nfeatures"))
        for name in ("stride_time", "stride_freq", "dilate_time", "dilate_freq"):
            set_(name, parse_layers(getattr(self, name), self.nconvlayers))
        set_("pool_size", _pair(self.pool_size, "pool_size"))
        dense = self.denselayers
        if isinstance(dense, str):
            dense = [d for d in dense.split(",") if d.strip()]
        set_("denselayers", tuple(int(d) for d in dense))
        normalization = {"before": "batch before ReLU", "after": "batch after ReLU"}.get(
            self.normalization, self.normalization)
        set_("normalization", normalization)
        set_("window_ms", float(self.window_ms))
        set_("stride_ms", float(self.stride_ms))
        set_("dropout_rate", float(self.dropout_rate))
        set_("context_ms", float(self.context_ms))
        set_("shiftby_ms", float(self.shiftby_ms))
        self._check_choices()

    def _check_choices(self) -> None:
        for name, allowed in (("representation", REPRESENTATIONS), ("connection", CONNECTIONS),
                              ("dropout_kind", DROPOUT_KINDS), ("pool_kind", POOL_KINDS),
                              ("normalization", NORMALIZATIONS)):
            if getattr(self, name) not in allowed:
                raise ModelError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ModelError(f"dropout_rate is a fraction in [0, 1), not {self.dropout_rate}")
        if self.nconvlayers < 0:
            raise ModelError(f"nconvlayers must be >= 0, not {self.nconvlayers}")
        if min(self.nfeatures) < 1 or min(self.kernel_sizes[0]) < 1 or self.kernel_sizes[1] < 1:
            raise ModelError(f"nfeatures {self.nfeatures} and kernel_sizes {self.kernel_sizes} must be positive")
        if self.mel_dct[1] > self.mel_dct[0] or min(self.mel_dct) < 1:
            raise ModelError(f"mel_dct {self.mel_dct}: the number of DCT coefficients must be between 1 "
                             f"and the number of mel filters")
        both = set(self.stride_time + self.stride_freq) & set(self.dilate_time + self.dilate_freq)
        if both:
            raise ModelError(f"conv layers {sorted(both)} both stride and dilate; a layer may do only one")
        if self.context_ms <= 0:
            raise ModelError(f"context_ms must be positive, not {self.context_ms}")

    # -- tic geometry -------------------------------------------------------------------------

    def context_tics(self, rate: int) -> int:
        """Tics seen for one decision: ``int(rate * context_ms / 1000)`` (512 at 2500 Hz)."""
        return int(rate * self.context_ms * 0.001)

    def shiftby_tics(self, rate: int) -> int:
        """``int(rate * shiftby_ms / 1000)``: tics between a window's centre and its labelled point."""
        return int(self.shiftby_ms * rate * 0.001)

    def window_tics(self, rate: int) -> int:
        """STFT frame, tics (1 for the waveform representation)."""
        return 1 if self.representation == "waveform" else int(round(rate * self.window_ms * 0.001))

    def hop_tics(self, rate: int) -> int:
        """STFT hop, tics (1 for the waveform representation)."""
        return 1 if self.representation == "waveform" else int(round(rate * self.stride_ms * 0.001))

    def stride_tics(self, rate: int) -> int:
        """Tics between output taps (SongExplorer's stride x downsample): the hop times 2 per
        time-strided conv layer, times the pooling size in time."""
        pool = self.pool_size[0] if self.pool_kind != "none" else 1
        return self.hop_tics(rate) * 2 ** len(self.stride_time) * pool

    def input_tics(self, rate: int, parallelize: int) -> int:
        """Input length giving ``parallelize`` taps: ``context + (parallelize - 1) * stride``."""
        return self.context_tics(rate) + (int(parallelize) - 1) * self.stride_tics(rate)

    # -- (de)serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; accepts SongExplorer's string forms too
        (``kernel_sizes="5x5,3"``, ``stride_time="1-3"``, ``dropout`` in percent, ...)."""
        values = dict(values)
        known = {f.name for f in fields(cls)}
        aliases = {"window": "window_ms", "stride": "stride_ms", "range": "range_hz",
                   "connection_type": "connection", "context": "context_ms", "shiftby": "shiftby_ms"}
        for old, new in aliases.items():
            if old in values and new not in values:
                values[new] = values.pop(old)
        if "dropout" in values and "dropout_rate" not in values:
            values["dropout_rate"] = float(values.pop("dropout")) / 100.0
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"unknown model parameter(s) {unknown}; known: {sorted(known)}")
        if "kernel_sizes" in values and isinstance(values["kernel_sizes"], list):
            values["kernel_sizes"] = _kernel_sizes(values["kernel_sizes"])
        return cls(**values)


