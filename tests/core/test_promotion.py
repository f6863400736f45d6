"""The promotion gate: the rule on constructed scores, and what it does to the MLflow registry."""

import math

import pandas as pd
import pytest

from songexplorer_core.promotion import (
    FIRST, GATE_DECIDES, OUTCOME_TAG, PINNED, PROMOTED, REASON_TAG, REFUSED, PromotionError, annotation_changes,
    apply_decision, current_champion, decide_promotion, pinned_version,
)
from songexplorer_core.tracking import TrackingConfig, log_training_run, pin_champion


def test_a_label_that_drops_beyond_the_tolerance_refuses_the_candidate_and_says_why():
    decision = decide_promotion({"pulse": 0.70, "sine": 0.95}, {"pulse": 0.90, "sine": 0.90},
                                candidate=2, champion=1, tolerance=0.05)
    assert not decision.promote and decision.outcome == REFUSED
    assert decision.regressions == {"pulse": (0.90, 0.70)}
    assert "pulse f1 0.700 vs 0.900" in decision.reason and "tolerance 0.05" in decision.reason
    assert "champion stays version 1" in decision.reason
    rows = {row["label"]: row for row in decision.table()}
    assert rows["pulse"]["regressed"] and not rows["sine"]["regressed"]
    assert rows["pulse"]["change"] == pytest.approx(-0.20)


def test_a_drop_within_the_tolerance_or_a_gain_promotes():
    within = decide_promotion({"pulse": 0.86, "sine": 0.99}, {"pulse": 0.90, "sine": 0.90},
                              candidate="3", champion="1", tolerance=0.05)
    assert within.promote and within.outcome == PROMOTED and within.regressions == {}
    exactly = decide_promotion({"pulse": 0.85}, {"pulse": 0.90}, candidate=3, champion=1, tolerance=0.05)
    assert exactly.promote  # a drop of exactly the tolerance is allowed
    strict = decide_promotion({"pulse": 0.8999}, {"pulse": 0.90}, candidate=3, champion=1, tolerance=0.0)
    assert not strict.promote


def test_a_label_the_candidate_cannot_score_counts_as_zero_and_new_labels_never_refuse():
    missing = decide_promotion({"sine": 0.9}, {"pulse": 0.10, "sine": 0.9}, candidate=2, champion=1, tolerance=0.05)
    assert not missing.promote and "pulse: version 2 does not predict it" in missing.reason
    undefined = decide_promotion({"pulse": math.nan}, {"pulse": 0.5}, candidate=2, champion=1)
    assert not undefined.promote
    extra = decide_promotion({"pulse": 0.9, "hum": 0.0}, {"pulse": 0.9}, candidate=2, champion=1)
    assert extra.promote
    # the champion's undefined scores (nothing of that label in the dense set) are not compared
    assert decide_promotion({"pulse": 0.0}, {"pulse": math.nan}, candidate=2, champion=1).promote


def test_no_champion_means_the_first_candidate_is_promoted():
    decision = decide_promotion({"pulse": 0.1}, None, candidate=1, champion=None)
    assert decision.promote and decision.outcome == FIRST and "first champion" in decision.reason


@pytest.mark.parametrize("tolerance", [-0.1, 1.5, math.nan])
def test_an_unusable_tolerance_is_refused(tolerance):
    with pytest.raises(PromotionError, match="tolerance"):
        decide_promotion({"pulse": 0.5}, {"pulse": 0.5}, candidate=2, champion=1, tolerance=tolerance)


# -- the registry ------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path):
    return TrackingConfig.for_project_dir(tmp_path / "mlflow")


def log(config, tmp_path, name, f1, **kwargs):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.json").write_text("{}")
    return log_training_run(config, params={"name": name}, history=pd.DataFrame(), metrics={"validation_f1_macro": f1},
                            model_dir=folder, run_name=name, **kwargs)


def test_logging_for_the_gate_leaves_the_alias_and_a_refusal_keeps_it_on_the_old_champion(config, tmp_path):
    first = log(config, tmp_path, "a", f1=0.5, champion_metric=GATE_DECIDES)
    assert first.champion_version is None and current_champion(config) is None
    assert apply_decision(config, decide_promotion({"pulse": 0.8}, None, candidate=first.version,
                                                   champion=None)) == "1"
    # a better validation F1 would have made version 2 champion; the gate refuses it on the dense scores
    second = log(config, tmp_path, "b", f1=0.99, champion_metric=GATE_DECIDES)
    assert current_champion(config) == "1"
    refused = decide_promotion({"pulse": 0.3}, {"pulse": 0.8}, candidate=second.version, champion="1")
    assert apply_decision(config, refused) == "1"
    version = config.client().get_model_version(config.registered_model, "2")
    assert version.tags[OUTCOME_TAG] == REFUSED and "pulse f1 0.300 vs 0.800" in version.tags[REASON_TAG]
    third = log(config, tmp_path, "c", f1=0.1, champion_metric=GATE_DECIDES)
    assert apply_decision(config, decide_promotion({"pulse": 0.81}, {"pulse": 0.8}, candidate=third.version,
                                                   champion="1")) == "3"
    assert config.client().get_model_version(config.registered_model, "3").tags[OUTCOME_TAG] == PROMOTED


def test_a_pinned_champion_is_never_moved_by_the_gate(config, tmp_path):
    log(config, tmp_path, "a", f1=0.5)
    pin_champion(config, 1)
    assert pinned_version(config) == "1"
    second = log(config, tmp_path, "b", f1=0.9, champion_metric=GATE_DECIDES)
    decision = decide_promotion({"pulse": 0.9}, {"pulse": 0.1}, candidate=second.version, champion="1")
    assert decision.promote
    assert apply_decision(config, decision) == "1"
    tags = config.client().get_model_version(config.registered_model, "2").tags
    assert tags[OUTCOME_TAG] == PINNED and "pinned to version 1" in tags[REASON_TAG]


def test_a_refusal_names_the_label_its_score_and_what_changed_in_its_annotations():
    # issue 12: one point on mel-sine (otherwise ranges); dense sine F1 fell from 1.000 to 0.075
    columns = ["label", "points", "ranges", "kind", "shortest_range_s", "median_range_s", "shortest_gap_s"]
    before = pd.DataFrame([["mel-pulse", 32, 0, "points", math.nan, math.nan, 0.03],
                           ["mel-sine", 0, 32, "ranges", 0.112, 0.4, math.nan]], columns=columns)
    after = pd.DataFrame([["mel-pulse", 32, 0, "points", math.nan, math.nan, 0.03],
                          ["mel-sine", 1, 32, "ranges", 0.112, 0.4, math.nan],
                          ["hum", 0, 3, "ranges", 0.5, 0.5, math.nan]], columns=columns)
    changes = annotation_changes(before, after)
    assert changes["mel-sine"] == ("32 ranges and 0 points -> 32 ranges and 1 point, now annotated both as ranges "
                                   "and as points (still taken for ranges, the majority)")
    assert changes["mel-pulse"] == "unchanged (0 ranges and 32 points)"
    assert changes["hum"] == "new label (3 ranges and 0 points)"
    shorter = annotation_changes(before, before.assign(shortest_range_s=[math.nan, 0.02]))
    assert shorter["mel-sine"] == "shortest range 0.112 s -> 0.020 s"
    flipped = annotation_changes(before, before.assign(points=[32, 40]))
    assert flipped["mel-sine"].endswith("taken for ranges -> points")
    assert "not known" in annotation_changes(None, after)["mel-sine"]
    decision = decide_promotion({"mel-pulse": 0.95, "mel-sine": 0.075}, {"mel-pulse": 0.95, "mel-sine": 1.0},
                                candidate=2, champion=1, changes=changes)
    assert not decision.promote
    assert ("(mel-sine f1 0.075 vs 1.000 (its annotations since the champion: 32 ranges and 0 points -> 32 ranges "
            "and 1 point, now annotated both") in decision.reason
    assert "mel-pulse" not in decision.reason  # only regressed labels are named
