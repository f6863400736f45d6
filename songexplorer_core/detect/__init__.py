"""SongExplorer's time/frequency threshold detector (``detect-plugins/time-freq-threshold.py``).

Detection marks three kinds of interval in a recording, each a row of kind ``detected``:

* ``time``: the waveform is loud. A tic is loud when ``|x - median(x)| > σ_signal · MAD(x)``
  (raw int16 values, un-normalised MAD); loud stretches closer than ``time smooth`` are merged.
* ``frequency``: the spectrum holds a line (a tone). Windows of ``N`` tics, hopped by ``N/2``,
  are tested with Thomson's multitaper harmonic F-test; a window is flagged when it holds a
  significant line inside ``frequency range``. Single flagged windows are dropped and single
  gaps filled (morphological opening, then closing, ``frequency smooth`` long).
* ``neither``: quiet, i.e. neither loud at the lower ``σ_noise`` nor tonal at the laxer ``ρ_noise``.

With the default ``quirks=True`` the rows are exactly SongExplorer's (v0.9.1),
including its odd tic conventions (quirks 1-3 of docs/design.md's table, see ``docs/detection.md``):
``time`` stops are exclusive, ``frequency`` rows use a window formula whose start can be
negative, and ``neither`` misses quiet stretches that touch either end of the recording.
``quirks=False`` gives inclusive, in-range intervals instead.

SongExplorer computed the F-test with ``nitime.utils.detect_lines`` and the morphology with
scikit-image; here the same arithmetic is done with ``scipy.signal.windows.dpss``,
``scipy.fft.rfft`` and ``scipy.ndimage``, vectorised over blocks of windows.

Units: tics are 0-based sample indices; ``rate`` is in Hz (tics per second); durations in the
parameters are milliseconds; frequencies in Hz, or cycles per tic where noted.

One module per step: :mod:`.params` (SongExplorer's parameters, resolved for a rate),
:mod:`.morphology` (scikit-image's 1-D closing/opening), :mod:`.criteria` (the time, frequency
and quiet criteria of one channel) and :mod:`.recording` (whole recordings and the
``-detected.csv``). Every public name is importable from ``songexplorer_core.detect``.
"""

from songexplorer_core.detect.criteria import (
    BLOCK_WINDOWS, CHUNK_TICS, frequency_runs, harmonic_f_test, line_flags, quiet_runs, time_runs, window_flags,
)
from songexplorer_core.detect.morphology import closed_runs, mask_runs, skimage_closing, skimage_opening
from songexplorer_core.detect.params import ROBUST_CHOICES, DetectParams, DetectSettings, multitaper_tapers
from songexplorer_core.detect.recording import (
    DEFAULT_DETECTOR, DETECTED_KIND, FREQUENCY_LABEL, NEITHER_LABEL, TIME_LABEL, detect, detect_recording,
    detect_with, detected_csv_name, detected_csv_text, time_freq_threshold, write_detected_csv,
)

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTED_KIND",
    "detect_with",
    "time_freq_threshold",
    "DetectParams",
    "DetectSettings",
    "detect",
    "detect_recording",
    "detected_csv_name",
    "write_detected_csv",
    "detected_csv_text",
    "time_runs",
    "frequency_runs",
    "quiet_runs",
    "harmonic_f_test",
    "line_flags",
    "window_flags",
    "multitaper_tapers",
    "skimage_closing",
    "skimage_opening",
    "mask_runs",
    "closed_runs",
]

#: ``kind`` of every row detection writes.
