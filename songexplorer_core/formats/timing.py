"""Tics and seconds, converted exactly at a recording's rate.

SongExplorer's CSVs count time in tics (0-based sample indices, start and stop both inclusive);
Raven, Audacity, Praat and DAS count it in seconds. The rule, both ways:

* **A tic is the time of its sample**: tic ``t`` is ``t / rate`` seconds, for the start and for
  the (inclusive) stop alike. A point (``start == stop``) is a zero-length selection, which every
  one of these tools draws as a point; a range of tics ``a..b`` is the selection ``a/rate .. b/rate``.
* **Tics to seconds** (writing): ``t / rate`` computed exactly, then written with
  :func:`decimals_for` decimals (``ceil(log10(rate)) + 3``, at least 6), rounded half to even,
  trailing zeros dropped. The written time is within a two-thousandth of a tic of the exact
  one (``0.5e-decimals s * rate <= 0.0005`` tics); at 2500 Hz every tic is exact (0.0004 s steps).
* **Seconds to tics** (reading): the number *as written* (decimal text, parsed exactly, never
  through a binary float) times the rate, rounded to the nearest tic, halves up. A file this
  module wrote therefore reads back to the very tics it was written from, at any rate up to
  about 10^15 tics; another tool's times land on the nearest tic.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext

#: A decimal number as the formats write them: optional sign, digits with an optional '.', an
#: optional exponent. ``nan``, ``inf`` and hexadecimal are not numbers of time.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: Digits enough for any tic count an int64 holds, and the decimals of the fraction.
_PRECISION = 60


def check_rate(rate) -> int:
    """``rate`` as an int (Hz, tics per second); ``ValueError`` unless it is a whole number >= 1."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate != int(rate) or rate < 1:
        raise ValueError(f"the sample rate must be a whole number of Hz >= 1, not {rate!r}")
    return int(rate)


def decimals_for(rate: int) -> int:
    """How many decimals seconds are written with at ``rate`` Hz: ``ceil(log10(rate)) + 3``, at
    least 6 (Audacity's own precision). 2500 Hz -> 7, 44100 Hz -> 8, 250 kHz -> 9."""
    return max(6, math.ceil(math.log10(check_rate(rate))) + 3)


def seconds_text(tic: int, rate: int) -> str:
    """Tic ``tic`` at ``rate`` Hz as seconds text, e.g. ``seconds_text(10, 2500) == "0.004"``.

    Exact to :func:`decimals_for` decimals (rounded half to even), trailing zeros dropped, no
    exponent; ``"0"`` for tic 0.
    """
    rate = check_rate(rate)
    with localcontext() as context:
        context.prec = _PRECISION
        value = (Decimal(int(tic)) / Decimal(rate)).quantize(Decimal(1).scaleb(-decimals_for(rate)),
                                                            rounding=ROUND_HALF_EVEN)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def parse_seconds(text: str) -> Decimal | None:
    """Seconds text as an exact :class:`~decimal.Decimal`; ``None`` if it is not a plain decimal
    number (``nan``, ``inf``, a comma as the decimal mark, empty)."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    return Decimal(text)


def tic_of(seconds: Decimal, rate: int) -> int:
    """The tic nearest ``seconds`` at ``rate`` Hz, halves up (towards the later tic)."""
    rate = check_rate(rate)
    with localcontext() as context:
        context.prec = _PRECISION
        return int((seconds * Decimal(rate) + Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR))


def number_problem(text: str, what: str) -> str:
    """Why ``text`` is not seconds, worded for a person (the decimal comma gets its own hint)."""
    if re.fullmatch(r"\s*[+-]?[0-9]+,[0-9]+\s*", text):
        return (f"{what} {text!r} uses a comma as the decimal mark; write seconds with a '.' "
                f"(set the tool's or the system's number format to use '.')")
    return f"{what} {text!r} is not a number of seconds"
