"""Reviewing the classifier through Dagster, materialised for real on a small demo project:
misses, summaries, the congruence report with dense annotations, the three review workflows
(activations + cluster), bad input, and the promotion gate.

One module-scoped project is trained once (60 steps) and classified; the tests read it. The
gate test trains two more (tiny) models and so changes the champion: it runs last.
"""

import contextlib
import json
import math

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from songexplorer_core.activations import ActivationsError, read_activations
from songexplorer_core.annotations import annotated_csv_name, read_intervals_csv, write_intervals_csv
from songexplorer_core.congruence import CongruenceError, congruence
from songexplorer_core.demo import make_demo_project
from songexplorer_core.promotion import OUTCOME_TAG, REASON_TAG, REFUSED
from songexplorer_core.summaries import song_summary
from songexplorer_core.synth import SongParams, make_song
from songexplorer_core.tracking import CHAMPION_ALIAS, metric_key, model_versions, run_metric
from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
from songexplorer_core.dense_set import DenseSetError
from songexplorer_dagster.defs.review.congruence import congruence_report
from songexplorer_dagster.defs.detection.assets import detections
from songexplorer_dagster.constants import PROMOTION_CHECK
from songexplorer_dagster.defs.model.assets import accuracy_report, trained_model
from songexplorer_dagster.defs.predictions.assets import ethograms, probabilities
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.defs.review.assets import activations, cluster, misses, mistakes, summaries
from songexplorer_dagster.definitions import defs as code_location
from songexplorer_dagster.defs.review.jobs import WORKFLOW_KINDS
from songexplorer_dagster.partitions import recordings_partitions
from songexplorer_dagster.defs.resources import (
    ComputeResource, DenseSetResource, EthogramResource, MlflowResource, ProjectResource,
)

RATE = 2500
DURATION_S = 30
KEYS = ["demo-1.wav", "demo-2.wav", "demo-3.wav"]
DENSE_KEY = "demo-3.wav"  # the demo's unannotated recording: dense annotations by person2 are its whole truth
SHORT_TRAINING = {"nsteps": 60, "validate_period": 20, "validate_percentage": 30.0, "mini_batch": 16}
TINY_TRAINING = {"nsteps": 2, "validate_period": 1, "validate_percentage": 30.0, "mini_batch": 8}
ALL_ASSETS = [recordings, detections, annotations, ground_truth, trained_model, accuracy_report, probabilities,
              ethograms, misses, mistakes, activations, cluster, summaries, congruence_report]
PCA = {"method": "pca"}  # the workflow tests that are not about UMAP embed with PCA (no numba compile)


def demo_truth(index: int) -> pd.DataFrame:
    """Every pulse and sine bout make_demo_project put into demo-<index+1>.wav (seed 1)."""
    song = make_song(DURATION_S, RATE, SongParams(), seed=1000 + index, wav=f"demo-{index + 1}.wav")
    return pd.concat([song.pulses, song.sines], ignore_index=True).assign(kind="annotated")


def per_recording(assets, keys, instance, resources):
    for key in keys:
        assert dg.materialize(assets, partition_key=key, instance=instance, resources=resources,
                              selection=assets).success


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("instance"))) as instance:
        yield instance


@pytest.fixture(scope="module")
def demo(tmp_path_factory, instance):
    """A classified demo project: 3 recordings of 30 s, a 60-step champion (trained with no dense
    set), ethograms and misses everywhere, and person2's dense annotations of demo-3."""
    project = make_demo_project(tmp_path_factory.mktemp("review") / "demo", nrecordings=3, duration_s=DURATION_S,
                                annotations_per_label=8)
    resources = {"project": ProjectResource(root=str(project.root)), "mlflow": MlflowResource(),
                 "compute": ComputeResource(device="cpu"), "dense_set": DenseSetResource(dense_annotators=[]),
                 "ethogram": EthogramResource()}
    instance.add_dynamic_partitions(recordings_partitions.name, KEYS)
    per_recording([recordings, detections, annotations], KEYS, instance, resources)
    assert dg.materialize([ground_truth], instance=instance, resources=resources).success
    training = dg.materialize([trained_model, accuracy_report], instance=instance, resources=resources,
                              run_config={"ops": {"trained_model": {"config": SHORT_TRAINING}}})
    assert training.success
    per_recording([probabilities, ethograms, misses], KEYS, instance, resources)
    write_intervals_csv(demo_truth(2), project.groundtruth / annotated_csv_name(DENSE_KEY, "person2"))
    dense = {**resources, "dense_set": DenseSetResource(dense_annotators=["person2"])}
    return {"project": project, "resources": resources, "dense": dense, "training": training}


def defs_with(resources):
    """The code location's assets and jobs with the test's resources."""
    return dg.Definitions(assets=ALL_ASSETS, jobs=list(code_location.jobs), resources=resources)


def predicted(project, key):
    frame = pd.read_parquet(project.outputs / "ethograms" / f"{key}.parquet")
    return frame[frame["ratio"] == frame["ratio"].iloc[0]].drop(columns="ratio")


def tic_mask(frame, ntics):
    mask = np.zeros(ntics, dtype=bool)
    for start, stop in zip(frame["start"], frame["stop"]):
        mask[max(int(start), 0): min(int(stop), ntics - 1) + 1] = True
    return mask


# -- the gate, skipped ----------------------------------------------------------------------------


@contextlib.contextmanager
def fails_with(error_type, match):
    """The step fails with ``dagster.Failure`` carrying core's message (``fails_clearly``), caused by ``error_type``."""
    with pytest.raises(dg.Failure, match=match) as caught:
        yield
    assert isinstance(caught.value.__cause__, error_type)


def test_without_dense_annotations_the_gate_passes_and_says_it_was_skipped(demo):
    (check,) = demo["training"].get_asset_check_evaluations()
    assert check.check_name == PROMOTION_CHECK and check.passed
    assert check.description.startswith("no dense annotations: gate skipped")
    tracking = demo["resources"]["mlflow"].tracking(demo["project"].root)
    assert CHAMPION_ALIAS in model_versions(tracking)["aliases"].iloc[0]


# -- misses ---------------------------------------------------------------------------------------


def test_misses_are_exactly_the_detected_tics_no_prediction_covers(demo):
    project = demo["project"]
    ntics = DURATION_S * RATE
    total = 0
    for key in KEYS:
        missed = read_intervals_csv(project.outputs / "missed" / f"{key}-missed.csv")
        assert set(missed["kind"]) <= {"missed"} and set(missed["label"]) <= {"other"}
        detected = tic_mask(pd.read_parquet(project.outputs / "detections" / f"{key}.parquet"), ntics)
        expected = detected & ~tic_mask(predicted(project, key), ntics)
        assert np.array_equal(tic_mask(missed, ntics), expected)
        # maximal runs: no two misses touch
        ordered = missed.sort_values("start")
        assert (ordered["start"].to_numpy()[1:] > ordered["stop"].to_numpy()[:-1] + 1).all()
        assert len(pd.read_parquet(project.outputs / "misses" / f"{key}.parquet")) == len(missed)
        total += len(missed)
    assert total > 0


# -- summaries ------------------------------------------------------------------------------------


def test_summaries_cover_every_classified_recording_with_a_raster(demo, instance):
    project = demo["project"]
    result = dg.materialize([summaries], instance=instance, resources=demo["resources"])
    meta = result.asset_materializations_for_node("summaries")[0].metadata
    assert meta["recordings"].value == 3
    assert "data:image/png;base64," in meta["ethogram"].value
    table = pd.read_csv(project.outputs / "summaries" / "summary.csv")
    frames = pd.concat([predicted(project, key) for key in KEYS], ignore_index=True)
    expected = song_summary(frames, {key: DURATION_S for key in KEYS}, rate=RATE)
    pd.testing.assert_frame_equal(table.sort_values(["recording", "label"]).reset_index(drop=True),
                                  expected.sort_values(["recording", "label"]).reset_index(drop=True),
                                  check_dtype=False, check_exact=False, rtol=1e-6)
    counts = frames.groupby(["wav", "label"]).size()
    for row in table.itertuples():
        assert row.events == counts.get((row.recording, row.label), 0)
        assert row.events_per_min == pytest.approx(row.events / (DURATION_S / 60))
    assert (project.outputs / "summaries" / "ethogram.png").stat().st_size > 1000


# -- congruence -----------------------------------------------------------------------------------


def test_the_congruence_report_scores_the_champion_on_the_dense_set_and_logs_it_to_mlflow(demo, instance):
    project, resources = demo["project"], demo["dense"]
    result = dg.materialize([congruence_report], instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("congruence_report")[0].metadata
    assert meta["model_version"].value == "1" and meta["dense_recordings"].value == [DENSE_KEY]
    direct = congruence({"person2": demo_truth(2)}, predicted(project, DENSE_KEY), recordings=[DENSE_KEY], rate=RATE)
    scores = direct.scores
    scores = scores[(scores["measure"] == "label") & (scores["reference"] == "songexplorer")].set_index("label")
    run_id = model_versions(resources["mlflow"].tracking(project.root))["run_id"].iloc[0]
    logged = resources["mlflow"].tracking(project.root).client().get_run(run_id).data.metrics
    assert math.isfinite(scores.loc["mel-pulse", "f1"]) and math.isfinite(scores.loc["mel-sine", "f1"])
    for label in ("mel-pulse", "mel-sine"):
        for name in ("precision", "recall", "f1"):
            value = float(scores.loc[label, name])
            if math.isfinite(value):
                assert meta[f"dense_{name}_{label}"].value == pytest.approx(value)
                assert run_metric(logged, f"dense_{name}_{label}") == pytest.approx(value)
        assert "data:image/png;base64," in meta[f"{label} sweep"].value
    folder = project.outputs / "congruence" / "v1"
    for name in ("congruence.label.mel-pulse.csv", "congruence.tic.mel-sine.csv", "congruence-scores.csv",
                 "congruence.label.mel-pulse.png", f"{DENSE_KEY}-disjoint-everyone.csv"):
        assert (folder / name).exists(), name
    assert list(folder.glob("thresholds-dense-label-*.ckpt-*.csv"))
    assert json.loads((folder / "headline.json").read_text())["metrics"]["dense_f1_mel-pulse"] == \
        pytest.approx(float(scores.loc["mel-pulse", "f1"]))


def test_a_dense_file_for_a_recording_without_an_ethogram_is_named(demo, instance, tmp_path):
    project = demo["project"]
    import shutil

    extra_wav = project.groundtruth / "late.wav"
    extra_csv = project.groundtruth / annotated_csv_name("late.wav", "person2")
    shutil.copy(project.groundtruth / "demo-1.wav", extra_wav)
    write_intervals_csv(demo_truth(0).assign(wav="late.wav"), extra_csv)
    try:
        with fails_with(DenseSetError, match=r"no ethogram: .*late\.wav-annotated-person2\.csv \(recording late"):
            dg.materialize([congruence_report], instance=instance, resources=demo["dense"])
    finally:
        extra_csv.unlink()
        extra_wav.unlink()


def test_annotators_whose_spans_do_not_overlap_are_refused_under_intersection(demo, instance):
    project = demo["project"]
    truth = demo_truth(2)
    late = truth["stop"].max() + 1000
    person3 = project.groundtruth / annotated_csv_name(DENSE_KEY, "person3")
    write_intervals_csv(truth.head(1).assign(start=late, stop=late + 20), person3)
    resources = {**demo["resources"], "dense_set": DenseSetResource(dense_annotators=["person2", "person3"],
                                                                    portion="intersection")}
    try:
        with fails_with(CongruenceError, match="spans do not overlap"):
            dg.materialize([congruence_report], instance=instance, resources=resources)
    finally:
        person3.unlink()


def test_no_dense_annotator_with_files_is_a_clear_message(demo, instance):
    resources = {**demo["resources"], "dense_set": DenseSetResource(dense_annotators=["nobody"])}
    with fails_with(DenseSetError, match=r"no annotation file by \['nobody'\].*annotators found: \['person2', 'seed'\]"):
        dg.materialize([congruence_report], instance=instance, resources=resources)


# -- the review workflows -------------------------------------------------------------------------


def run_workflow(demo, instance, name, cluster_config=None):
    job = defs_with(demo["resources"]).resolve_job_def(name)
    config = {"ops": {"activations": {"config": {"kinds": WORKFLOW_KINDS[name]}}}}
    if cluster_config:
        config["ops"]["cluster"] = {"config": cluster_config}
    return job.execute_in_process(instance=instance, run_config=config)


def read_cluster_for_annotator(project):
    from songexplorer_annotator.cluster import read_cluster_table

    return read_cluster_table(project.outputs / "cluster" / "cluster.parquet", {k: k for k in KEYS}.get)


def test_fix_false_positives_clusters_annotated_and_predicted_sounds_for_the_annotator(demo, instance):
    project = demo["project"]
    result = run_workflow(demo, instance, "fix_false_positives_job")  # UMAP, the default
    assert result.success
    frame = pd.read_parquet(project.outputs / "cluster" / "cluster.parquet")
    assert {"wav", "start", "stop", "kind", "label", "x", "y"} <= set(frame.columns) and "z" not in frame.columns
    assert set(frame["kind"]) == {"annotated", "predicted"}
    assert np.isfinite(frame[["x", "y"]].to_numpy()).all()
    acts = read_activations(project.outputs / "activations" / "activations.npz")
    assert len(frame) == acts.nsounds and frame["layer"].nunique() == 1  # one row per sound
    table = read_cluster_for_annotator(project)
    assert table.unmatched == 0 and len(table.sounds) == len(frame)
    meta = result.asset_materializations_for_node("cluster")[0].metadata
    assert meta["method"].value == "umap" and "data:image/png;base64," in meta["embedding"].value


def test_fix_false_negatives_clusters_annotated_and_missed_sounds(demo, instance):
    result = run_workflow(demo, instance, "fix_false_negatives_job", PCA)
    assert result.success
    frame = pd.read_parquet(demo["project"].outputs / "cluster" / "cluster.parquet")
    assert set(frame["kind"]) == {"annotated", "missed"}
    missed = frame[frame["kind"] == "missed"]
    assert set(missed["label"]) == {"other"}


def test_examine_errors_judges_every_annotation_then_clusters_detected_and_mistaken(demo, instance):
    project = demo["project"]
    result = run_workflow(demo, instance, "examine_errors_job", PCA)
    assert result.success
    judged = pd.concat([read_intervals_csv(p) for p in sorted((project.outputs / "mistakes").glob("*-mistakes.csv"))])
    annotated = pd.read_parquet(project.outputs / "ground_truth" / "ground_truth.parquet")
    assert len(judged) == len(annotated)  # every annotated sound, labels all known to the model
    assert ((judged["kind"] == "correct") == (judged["label"] == judged["annotated_label"])).all()
    frame = pd.read_parquet(project.outputs / "cluster" / "cluster.parquet")
    assert set(frame["kind"]) <= {"detected", "mistaken"} and "detected" in set(frame["kind"])
    if (judged["kind"] == "mistaken").any():
        assert "mistaken" in set(frame["kind"])


def test_a_layer_the_model_does_not_have_is_named_with_the_valid_ones(demo, instance):
    config = {"ops": {"activations": {"config": {"kinds": ["annotated"], "layers": "99"}}}}
    with fails_with(ActivationsError, match=r"layer index 99 is not a layer of this model: valid indices are 0-\d+: "
                                               r"0 input, 1 "):
        dg.materialize([activations], instance=instance, resources=demo["resources"], run_config=config)


def test_zero_sounds_of_the_chosen_kinds_is_a_clear_message(demo, instance):
    config = {"ops": {"activations": {"config": {"kinds": ["missed"], "labels": ["mel-sine"]}}}}
    with fails_with(ActivationsError, match=r"no sounds of kind\(s\) \['missed'\] with label\(s\) \['mel-sine'\].*"
                                               r"labels of the chosen kinds: \['other'\]"):
        dg.materialize([activations], instance=instance, resources=demo["resources"], run_config=config)


# -- automation -----------------------------------------------------------------------------------


def test_a_new_ethogram_brings_its_misses_the_summaries_and_the_congruence_report_but_no_clustering(demo, instance):
    defs = defs_with(demo["dense"])
    review = dg.AssetSelection.assets(misses, summaries, congruence_report, activations, cluster, mistakes)
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=review)
    assert dg.materialize([ethograms], partition_key="demo-1.wav", instance=instance,
                          resources=demo["resources"]).success
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=review,
                                               cursor=baseline.cursor)
    requested = {name: result.get_requested_partitions(dg.AssetKey(name)) for name in
                 ("misses", "summaries", "congruence_report", "activations", "cluster", "mistakes")}
    assert requested == {"misses": {"demo-1.wav"}, "summaries": {None}, "congruence_report": {None},
                         "activations": set(), "cluster": set(), "mistakes": set()}


# -- songexplorer status, on the classified project ----------------------------------------------


def test_status_names_the_champion_its_scores_and_what_is_stale(demo):
    from songexplorer_core.status import format_status, project_status

    project = demo["project"]
    status = project_status(project, demo["resources"]["mlflow"].tracking(project.root))
    assert status.recordings == KEYS and status.champion.version == "1"
    assert set(status.champion.validation_f1) == {"ambient", "mel-pulse", "mel-sine"}
    assert status.annotations.loc["mel-pulse", "seed"] == 16 and "person2" in status.annotations.columns
    text = format_status(status)
    assert "champion: version 1 of " in text and "validation F1: ambient " in text
    # every recording has its ethogram by the champion; person2's dense file came after the training
    assert [s for s in status.stale if "ethogram" in s or "classified" in s or "detected" in s] == []
    assert any("changed since the champion was trained" in s and "person2" in s for s in status.stale)


# -- the promotion gate (changes the champion: last) ---------------------------------------------


def test_a_model_worse_on_the_dense_set_is_refused_as_champion_with_the_reason(demo, instance):
    project = demo["project"]
    tracking = demo["resources"]["mlflow"].tracking(project.root)
    run_config = {"ops": {"trained_model": {"config": TINY_TRAINING}}}
    worse = dg.materialize([trained_model, accuracy_report], instance=instance, resources=demo["dense"],
                           run_config=run_config, raise_on_error=False)
    # a refusal is no crash: the run succeeds, version 2 is logged and kept out (a WARN check)
    assert worse.success
    (materialization,) = worse.asset_materializations_for_node("trained_model")
    assert materialization.metadata["promotion_outcome"].value == "kept out"
    assert worse.asset_materializations_for_node("accuracy_report")  # the refused model's accuracy is shown
    (check,) = worse.get_asset_check_evaluations()
    assert check.check_name == PROMOTION_CHECK and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN and check.metadata["outcome"].value == "kept out"
    assert check.description.startswith("refused: version 2 does worse than champion version 1")
    assert "the champion stays version 1" in check.description and "mel-pulse f1 " in check.description
    assert check.metadata["champion_version"].value == "1"
    versions = model_versions(tracking).set_index("version")
    assert CHAMPION_ALIAS in versions.loc["1", "aliases"] and CHAMPION_ALIAS not in versions.loc["2", "aliases"]
    tags = tracking.client().get_model_version(tracking.registered_model, "2").tags
    assert tags[OUTCOME_TAG] == REFUSED and tags[REASON_TAG] == check.description
    assert metric_key("dense_f1_mel-pulse") in tracking.client().get_run(versions.loc["2", "run_id"]).data.metrics
    assert "its annotations since the champion: unchanged" in check.description
    # automation re-materialises probabilities after any training; with the champion unchanged
    # they are reused, not recomputed
    npz = project.outputs / "probabilities" / "demo-1.wav-probabilities.npz"
    before = npz.stat().st_mtime_ns
    again = dg.materialize([probabilities], partition_key="demo-1.wav", instance=instance, resources=demo["dense"])
    meta = again.asset_materializations_for_node("probabilities")[0].metadata
    assert meta["reused"].value is True and meta["model_version"].value == "1" and npz.stat().st_mtime_ns == before

    # with every regression tolerated, the next new model is promoted and takes the alias
    lenient = {**demo["dense"], "dense_set": DenseSetResource(dense_annotators=["person2"], promotion_tolerance=1.0)}
    promoted = dg.materialize([trained_model], instance=instance, resources=lenient, run_config=run_config)
    (check,) = promoted.get_asset_check_evaluations()
    assert check.passed and check.description.startswith("promoted: version 3")
    assert promoted.asset_materializations_for_node("trained_model")[0].metadata["champion_version"].value == "3"
    assert CHAMPION_ALIAS in model_versions(tracking).set_index("version").loc["3", "aliases"]
