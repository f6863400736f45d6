"""Synthetic Drosophila-like courtship song with known truth.

A :class:`SynthSong` is a mono int16 recording plus the exact position of everything that was put
into it: every pulse (its extent and centre tic), every sine bout, and every non-song distractor
(click or bump). Tests use it where the right answer must be known (detection, training,
congruence); the demo project uses it instead of real recordings.

The model of song (see ``docs/synth.md`` for the full description and the calibration against
SongExplorer's tutorial recordings):

* **background**: Gaussian noise shaped by a 2nd-order high-pass and a 1st-order low-pass
  (a hump near 30-60 Hz falling off at 6 dB/octave, like the tutorial recordings), plus a white floor;
* **pulse trains**: Gabor pulses (Gaussian-windowed cosine, 150-400 Hz carrier, 5-10 ms long)
  spaced by the inter-pulse interval (IPI, ~35 ms) in trains of 5-30 pulses;
* **sine bouts**: a 130-170 Hz tone with a slow linear frequency drift, a weak second harmonic,
  and raised-cosine onset/offset ramps, 0.2-1.5 s long;
* **distractors**: broadband clicks (1-4 ms decaying noise bursts) and low-frequency bumps
  (20-80 ms Hann-shaped deflections), as loud as song, so that "loud" does not mean "song".

Trains, bouts and distractors never overlap and are separated by at least ``min_gap_s`` of
background. Everything is drawn from ``numpy.random.default_rng`` streams derived from one
``seed``, so a seed gives the same recording every time. Tics are 0-based sample indices and
interval stops are inclusive, as in SongExplorer's CSVs.

Three modules: :mod:`.model` (the knobs, :class:`SongParams`, and the result, :class:`SynthSong`),
:mod:`.song` (making the recording, :func:`make_song`, and writing it) and :mod:`.annotators`
(what people would annotate: every sound, or a few seeds per label). Every public name is
importable from ``songexplorer_core.synth``.
"""

from songexplorer_core.synth.annotators import dense_annotations, seed_annotations
from songexplorer_core.synth.model import (
    AMBIENT_LABEL, ANNOTATED_KIND, BUMP_LABEL, CLICK_LABEL, PULSE_LABEL, SINE_LABEL, TRUTH_KIND, SongParams,
    SynthSong,
)
from songexplorer_core.synth.song import make_song, write_song

__all__ = [
    "AMBIENT_LABEL", "ANNOTATED_KIND", "BUMP_LABEL", "CLICK_LABEL", "PULSE_LABEL", "SINE_LABEL", "TRUTH_KIND",
    "SongParams", "SynthSong", "dense_annotations", "make_song", "seed_annotations", "write_song",
]
