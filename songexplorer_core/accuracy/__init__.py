"""Accuracy of a trained model on its validation set, per checkpoint (SongExplorer's ``src/accuracy``).

Input: a training output folder holding, per checkpoint ``N``, ``validation.ckpt-<N>.npz``
(``logits`` ``[n, P, nlabels]`` raw network outputs, ``groundtruth`` ``[n, P]`` class index or
-1 = masked for the exclusive loss, or ``[n, P, nlabels]`` with 0/1/2 = absent/present/unknown
for the overlapped loss, ``labels``), plus ``history.csv``. SongExplorer's own
``logits.validation.ckpt-<N>.npz`` files are read too (labels then come from ``labels.txt``).

Statistics (all fractions in [0, 1], not percent):

* Confusion matrix: rows = annotation (truth), columns = classification (argmax of the logits),
  counting unmasked output taps. Overlapped: one 2x2 matrix per label, ``[[TP, FN], [FP, TN]]``
  (index 0 = present), a tap classified present when its sigmoid probability exceeds 0.5.
* Per-label precision and recall are SongExplorer's class-balanced ones (its ``src/accuracy``): recall from the
  row-normalised matrix, precision from the column-normalisation *of the row-normalised*
  matrix, so a label's precision does not depend on how many validation taps the other labels
  have. Overall P and R are the means over labels (NaNs skipped), F1 = 2PR/(P+R). Overlapped:
  per-label values come from each label's 2x2 matrix, overall values from their sum (as
  SongExplorer chooses the best checkpoint).
* The kept checkpoint (``AccuracyReport.best``) is by default the **last** validated one, as
  SongExplorer's tutorial freezes ``ckpt-<nsteps>``; ``choose="best-f1"`` keeps the one with the
  highest overall F1 instead (ties to the lowest validation loss in ``history.csv``, else the
  earliest). On real song the last one generalises better: sparse validation F1 jumps around
  between checkpoints (0.91-1.0 on the tutorial data) and picking its maximum picked an earlier,
  less trained network that predicted 25 % more pulses on an unseen recording (docs/recipe.md).
  Per-label figures are reported for the kept checkpoint (SongExplorer printed the last one's).
* Thresholds, for each requested precision/recall ratio, by default **SongExplorer's way**
  (``threshold_method="songexplorer"``, its ``src/lib.py``
  ``calculate_precision_recall_specificity``): 20 raw logits evenly from the lowest to the
  highest logit of the label's true validation taps, precision and recall counting taps at or
  above each, and the threshold is the logistic of the logit at which precision/recall equals
  the ratio, interpolated linearly (extrapolated beyond the grid). For an exclusive model the
  logistic of a softmax logit is not the softmax probability the ethogram compares it with
  (SongExplorer's QUIRK 10), but it is what SongExplorer's thresholds are, and on real song they
  are far better than thresholds set on the probabilities themselves (on SongExplorer's
  round-2 recording 645 predicted pulses against its own 589 with precision 0.91, instead of
  1 052 with precision 0.56; docs/recipe.md). Kept from our earlier fix: masked taps count
  neither as positives nor negatives, and a label without true validation taps gets NaN and a
  warning instead of a crash. ``threshold_method="exact"`` gives thresholds on the
  probabilities themselves over every distinct score (:func:`threshold_at_ratio`).
  A tap counts as the label when its probability is strictly above the threshold, as in
  ethogram; precision here is the plain TP/(TP+FP) on the validation taps.

One module per step: :mod:`.validation` (finding and loading the validation files),
:mod:`.statistics` (confusion matrices, precision-recall curves, thresholds), :mod:`.report`
(per checkpoint, the kept one, per training run) and :mod:`.outputs` (CSVs, thresholds files,
plots). Every public name is importable from ``songexplorer_core.accuracy``.
"""

from songexplorer_core.accuracy.validation import (
    EXCLUSIVE, OVERLAPPED, VALIDATION_NPZ, AccuracyError, AccuracyWarning, ValidationResults, checkpoint_of,
    find_validation_files, load_validation, model_folders, iter_ratios,
)
from songexplorer_core.accuracy.statistics import (
    SONGEXPLORER_NPROBABILITIES, softmax, sigmoid, probabilities_of, confusion_matrix,
    balanced_precision_recall, f1_score, PrecisionRecallCurve, precision_recall_curve, threshold_at_ratio,
    songexplorer_threshold, label_logits, label_scores,
)
from songexplorer_core.accuracy.report import (
    THRESHOLD_METHODS, CHECKPOINT_CHOICES, CheckpointAccuracy, evaluate_results, evaluate_checkpoint,
    best_checkpoint, choose_checkpoint, AccuracyReport, accuracy_report,
)
from songexplorer_core.accuracy.outputs import (
    PLOTS, write_accuracy_outputs, plot_confusion_matrix, plot_precision_recall, plot_training,
)

__all__ = [
    "AccuracyError",
    "AccuracyReport",
    "AccuracyWarning",
    "CHECKPOINT_CHOICES",
    "CheckpointAccuracy",
    "EXCLUSIVE",
    "OVERLAPPED",
    "PLOTS",
    "PrecisionRecallCurve",
    "SONGEXPLORER_NPROBABILITIES",
    "THRESHOLD_METHODS",
    "VALIDATION_NPZ",
    "ValidationResults",
    "accuracy_report",
    "balanced_precision_recall",
    "best_checkpoint",
    "checkpoint_of",
    "choose_checkpoint",
    "confusion_matrix",
    "evaluate_checkpoint",
    "evaluate_results",
    "f1_score",
    "find_validation_files",
    "iter_ratios",
    "label_logits",
    "label_scores",
    "load_validation",
    "model_folders",
    "plot_confusion_matrix",
    "plot_precision_recall",
    "plot_training",
    "precision_recall_curve",
    "probabilities_of",
    "sigmoid",
    "softmax",
    "songexplorer_threshold",
    "threshold_at_ratio",
    "write_accuracy_outputs",
]
