"""Choosing models: studies of many trainings (SongExplorer's X-Validate, Generalize, Compare,
replicates), learning curves, ensembles, and checkpoint housekeeping.

One module per part: :mod:`.plan` (what a study trains: :func:`xvalidate`, :func:`generalize`,
:func:`sweep`, :func:`replicates`, :func:`learning_curve`, :func:`compose`), :mod:`.run`
(trainings side by side in processes, each trial's result), :mod:`.summary` (tables and
comparison plots), :mod:`.study` (:func:`run_study`: all of it, with MLflow parent and child
runs; :func:`compare`), :mod:`.ensemble` (:func:`make_ensemble`) and :mod:`.housekeeping`
(:func:`delete_ckpts`, :func:`retain_model_runs`). TensorFlow is imported only inside functions.
"""

from songexplorer_core.studies.plan import (  # noqa: F401
    KINDS, OMIT, StudyError, Trial, compose, generalize, known_parameters, learning_curve, parse_vary, recordings_of,
    replicates, sweep, xvalidate,
)
from songexplorer_core.studies.run import (  # noqa: F401
    StudyProgress, default_workers, read_study, read_trial_result, run_trials, train_trial,
)
from songexplorer_core.studies.summary import StudySummary, summarize  # noqa: F401
from songexplorer_core.studies.study import StudyResult, compare, run_study  # noqa: F401
from songexplorer_core.studies.ensemble import EnsembleError, EnsembleResult, make_ensemble  # noqa: F401
from songexplorer_core.studies.housekeeping import Freed, delete_ckpts, retain_model_runs  # noqa: F401
