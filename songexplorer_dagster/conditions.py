"""Automation conditions the asset modules share: when an asset that reads every recording may run.

Dagster's ``eager()`` never fires while any partition of a dependency is missing (its
``~any_deps_missing()`` clause), so one bad recording would stop every report for good. Dropping
that clause alone (``eager().without(~any_deps_missing())``) made ``congruence_report`` run with
the first training, before any ethogram existed (a red failure on every fresh start).

``eager_over_recordings`` sits between the two: it fires as ``eager()`` does, ignores partitions
that cannot come (their own inputs are missing, e.g. a WAV that failed its check, or their last
run failed), and waits
while any partition can still come (missing, its inputs there) or none exists yet.
"""

import dagster as dg

AC = dg.AutomationCondition


def some_of_every_dep() -> dg.AutomationCondition:
    """Every dependency has at least one materialised partition (``all_deps_match`` is true when
    some partition of each dependency matches)."""
    return AC.all_deps_match(~AC.missing()).with_label("some of every dependency exists")


def coming(assets: list[str]) -> dg.AutomationCondition:
    """Some partition of one of ``assets`` (dependencies of the target) is missing while its own
    inputs are all there and its last run did not fail: automation is about to make it, so the
    target waits for it. (A failed one is not awaited: the target then runs and says what to redo.)"""
    return (AC.any_deps_match(AC.missing() & ~AC.any_deps_missing() & ~AC.execution_failed())
            .allow(dg.AssetSelection.assets(*assets))
            .with_label(f"a partition of {', '.join(assets)} is on its way"))


def eager_over_recordings(awaited: list[str]) -> dg.AutomationCondition:
    """``eager()`` for an unpartitioned asset that reads every recording's partition of its
    dependencies: runs after they update, never before some of each exists, and not while a
    partition of ``awaited`` is on its way (``coming``). Partitions that cannot come are ignored."""
    return (AC.eager().without(~AC.any_deps_missing()) & some_of_every_dep()
            & ~coming(awaited)).with_label("eager over the recordings that can be made")


def eager_except_for_new_models() -> dg.AutomationCondition:
    """``eager()`` for ``probabilities``, except that a new ``trained_model`` does not trigger it:
    ``new_model_sensor`` re-classifies every recording then, in batched runs that go straight to
    the run queue (automation's request would wait for the backfill daemon). It still never runs
    before a model exists, and still classifies a new or changed recording by itself."""
    model = dg.AssetSelection.assets("trained_model")
    return (AC.eager().ignore(model) & ~AC.any_deps_match(AC.missing()).allow(model)).with_label(
        "eager, but a new model is new_model_sensor's")
