"""Congruence: how far a model's predicted intervals agree with dense human annotations
(SongExplorer's ``src/congruence``), at the level of tics and of whole events ("labels"), for one ethogram and
for a sweep of probability thresholds.

Vocabulary (SongExplorer's):

* **keys**: the model's predictions (key ``"songex"`` by default, the name SongExplorer's
  disjoint files use) and every human annotator (``"Person1"``...).
* **everyone**: what all keys marked.  **only X**: what X marked and no other key did.
  **not X**: what every other key marked but X did not (defined with three keys or more).
* **tic level**: counts are tics (samples).  **label level**: counts are events (intervals):
  the connected pieces of each key's annotated set, matched one-to-one greedily (below).
* **portion**: which stretch of a recording counts as annotated: the ``union`` of the
  annotators' spans, or their ``intersection`` (then every annotator's marks are clipped to it).
  Predictions outside that stretch are ignored, as in SongExplorer.
* **convolve**: each interval is widened by ``floor(convolve_s * rate / 2)`` tics at both ends
  before comparing, a tolerance in **seconds** (SongExplorer's GUI labelled it "ms" but passed
  the number on as seconds: QUIRK 16; here it is seconds everywhere, named ``convolve_s`` /
  ``--convolve_sec``).

Scores: TP/FP/FN, precision, recall and F1 per label and measure against several references:

* ``"songexplorer"``: SongExplorer's own definition: TP = everyone, FP = only the model,
  FN = not the model (with two or more annotators) or only the annotator (with one);
* each annotator by name: the model against that annotator alone;
* ``"union"`` / ``"intersection"`` (two or more annotators): against what any / all of them marked.

Set semantics and SongExplorer's greedy event matching are described in :mod:`.intervals`.

Changes from SongExplorer (see docs/congruence.md):

* the annotated stretch defaults to the annotators' whole annotated span in the recording
  (``span="annotations"``, all labels); SongExplorer's per-label span (``span="label"``), which
  ignores predictions before a label's first and after its last annotation, is an option;
* precision/recall thresholds of the sweep are positive (SongExplorer negated them, QUIRK 16),
  so the dense thresholds are usable;
* every recording's disjoint files are written (SongExplorer wrote those of the last label's
  recordings), and the "not <model>" count is reported for sweep rows too (SongExplorer repeated
  "only");
* the choice of ``k1`` is deterministic (SongExplorer took the first of a Python ``set``);
* bad input is refused with a message: annotations of a recording without predictions, annotated
  spans that do not overlap under ``portion="intersection"``, a chosen label nobody annotated.

One module per step, each importing only those before it: :mod:`.terms` (names and the error),
:mod:`.intervals` (set algebra on the half-tic grid), :mod:`.prepare` (annotations into cases),
:mod:`.compare` (one recording and label), :mod:`.results` (:func:`congruence` and its result),
:mod:`.sweep` (threshold sweeps, dense thresholds) and :mod:`.report` (files and plots). Every
public name is importable from ``songexplorer_core.congruence``.
"""

from songexplorer_core.congruence.intervals import greedy_match
from songexplorer_core.congruence.prepare import convolve_tics
from songexplorer_core.congruence.report import (
    dense_thresholds_csv_name, disjoint_csv_name, plot_counts, plot_sweep, songexplorer_table,
    write_congruence_report, write_dense_thresholds, write_disjoint_csvs,
)
from songexplorer_core.congruence.results import Congruence, congruence, precision_recall_f1
from songexplorer_core.congruence.sweep import (
    CongruenceSweep, congruence_sweep, congruence_sweep_tables, sweep_thresholds, threshold_at_ratio, threshold_runs,
)
from songexplorer_core.congruence.terms import (
    ABSENT, EVERYONE, MEASURES, MODEL_KEY, PORTIONS, SONGEXPLORER_REFERENCE, SPANS, CongruenceError,
)

__all__ = [
    "ABSENT", "Congruence", "CongruenceError", "CongruenceSweep", "EVERYONE", "MEASURES", "MODEL_KEY",
    "PORTIONS", "SONGEXPLORER_REFERENCE", "SPANS", "congruence", "congruence_sweep", "congruence_sweep_tables",
    "convolve_tics", "dense_thresholds_csv_name", "disjoint_csv_name", "greedy_match", "plot_counts",
    "plot_sweep", "precision_recall_f1", "songexplorer_table", "sweep_thresholds", "threshold_at_ratio",
    "threshold_runs", "write_congruence_report", "write_dense_thresholds", "write_disjoint_csvs",
]
