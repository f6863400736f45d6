"""Ground truth for training: selection, SongExplorer's stable split, example windows and
targets, balancing, augmentation, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from songexplorer_core import dataset as D
from songexplorer_core.annotations import intervals_frame, write_intervals_csv
from songexplorer_core.audio import RecordingError

RATE = 2500
LABELS = ["mel-pulse", "mel-sine", "ambient"]
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def ramp_wav(path: Path, ntics: int = 30000, rate: int = RATE) -> Path:
    """A recording whose sample at tic t is t (int16): a window's content tells where it was cut."""
    soundfile.write(path, np.arange(ntics, dtype=np.int16), rate, subtype="PCM_16")
    return path


def ground_truth(folder: Path, rows: dict[str, list[tuple]], *, ntics: int = 30000, rate: int = RATE,
                 person: str = "person1") -> Path:
    """Write ramp recordings and their annotation CSVs: ``rows[wav] = [(start, stop, label), ...]``."""
    folder.mkdir(parents=True, exist_ok=True)
    for wav, items in rows.items():
        ramp_wav(folder / wav, ntics, rate)
        start, stop, label = zip(*items)
        write_intervals_csv(intervals_frame(wav, list(start), list(stop), "annotated", list(label)),
                            folder / f"{wav}-annotated-{person}.csv")
    return folder


def many_rows(n, label, first=2000, step=200, length=0):
    return [(first + i * step, first + i * step + length, label) for i in range(n)]


GEOMETRY = D.Geometry(context_tics=512, shiftby_tics=0, stride_tics=4, parallelize=2)


def test_windows_are_cut_around_the_point_and_shiftby_moves_them(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": [(10000, 10000, "mel-pulse")]})
    plain = D.make_dataset(gt, labels_to_use=["mel-pulse"], geometry=GEOMETRY)
    batch = plain.training_batch(3, np.random.default_rng(0))
    assert batch.audio.shape == (3, 516, 1) and batch.audio.dtype == np.float32
    tics = np.rint(batch.audio[0, :, 0] * 32768).astype(int)
    np.testing.assert_array_equal(tics, np.arange(10000 - 258, 10000 + 258))
    assert list(batch.offset_tic) == [10000] * 3
    shifted = D.make_dataset(gt, labels_to_use=["mel-pulse"],
                             geometry=D.Geometry(512, 128, 4, 2)).training_batch(1, np.random.default_rng(0))
    # SongExplorer's shiftby test: window_shift0[:-128] == window_shift128[128:]
    np.testing.assert_array_equal(batch.audio[0, :-128], shifted.audio[0, 128:])


@pytest.mark.parametrize("parallelize, marked", [(1, [0]), (2, [0, 1]), (3, [1]), (64, [31, 32])])
def test_a_point_annotation_marks_the_central_taps(tmp_path, parallelize, marked):
    gt = ground_truth(tmp_path, {"a.wav": [(10000, 10000, "mel-sine"), (20000, 20100, "ambient")]})
    ds = D.make_dataset(gt, labels_to_use=["ambient", "mel-sine"], geometry=D.Geometry(512, 0, 4, parallelize))
    batch = next(ds.evaluation_batches(D.TRAINING, 10))
    targets = batch.targets[batch.offset_tic == 10000][0]
    assert targets.shape == (parallelize,)
    assert list(np.flatnonzero(targets != -1)) == marked
    assert set(targets[marked]) == {1}


def test_a_range_marks_the_taps_it_touches(tmp_path):
    # examples are drawn inside the range; with P=64 the taps beyond the range's end stay masked
    gt = ground_truth(tmp_path, {"a.wav": [(10000, 10010, "ambient")]})
    ds = D.make_dataset(gt, labels_to_use=["ambient"], geometry=D.Geometry(512, 0, 4, 64))
    batch = ds.training_batch(200, np.random.default_rng(1))
    offsets = ds.geometry.tap_offsets  # -126, -122, ..., 126
    for targets, offset in zip(batch.targets, batch.offset_tic):
        expected = (offsets - 2 <= 10010 - offset) & (offsets + 2 >= 10000 - offset)
        np.testing.assert_array_equal(targets == 0, expected)
    assert set(batch.offset_tic) == set(range(10000, 10011))  # fresh points over the whole range


def test_range_points_are_uniform_and_fresh_each_draw(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": [(5000, 5099, "ambient")]})
    ds = D.make_dataset(gt, labels_to_use=["ambient"], geometry=GEOMETRY)
    offsets = ds.training_batch(20000, np.random.default_rng(3)).offset_tic
    counts = np.bincount(offsets - 5000, minlength=100)
    assert counts.min() > 140 and counts.max() < 270  # 200 expected in each of 100 tics


def test_split_is_songexplorers_hash_and_stable_when_annotations_are_added(tmp_path):
    rows_a = many_rows(60, "mel-pulse") + many_rows(40, "ambient", first=15000, length=50)
    rows_b = many_rows(60, "mel-pulse", first=2100) + many_rows(40, "ambient", first=15100, length=50)
    before = D.make_dataset(ground_truth(tmp_path / "one", {"a.wav": rows_a, "b.wav": rows_b}),
                            labels_to_use=["mel-pulse", "ambient"], geometry=GEOMETRY, validation_percentage=40)
    more_a = rows_a + many_rows(50, "mel-pulse", first=2050) + many_rows(20, "ambient", first=15030, length=70)
    after = D.make_dataset(ground_truth(tmp_path / "two", {"a.wav": more_a, "b.wav": rows_b}),
                           labels_to_use=["mel-pulse", "ambient"], geometry=GEOMETRY, validation_percentage=40)

    def assignment(ds):
        return {(r.wav, r.start, r.stop): r.set for r in ds.sounds.itertuples()}

    old, new = assignment(before), assignment(after)
    assert all(new[key] == value for key, value in old.items())
    assert len(new) == len(old) + 70
    fraction = np.mean([v == D.VALIDATION for v in new.values()])
    assert 0.3 < fraction < 0.5
    # a key's set is SongExplorer's: '_nohash_' suffixes are ignored, the offset moves the slice
    assert D.hash_percentage("x.wav12_nohash_3") == D.hash_percentage("x.wav12")
    keys = [f"r.wav{i}{i}" for i in range(2000)]
    folds = [[D.which_set(k, validation_percentage=25, validation_offset_percentage=25 * i) for k in keys]
             for i in range(4)]
    in_validation = np.array([[s == D.VALIDATION for s in fold] for fold in folds])
    assert (in_validation.sum(axis=0) <= 1).all() and in_validation.sum() > 1990  # k folds tile the keys


def test_validation_and_testing_files_take_whole_recordings(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": many_rows(10, "mel-pulse"), "b.wav": many_rows(10, "mel-pulse"),
                                 "c.wav": many_rows(10, "mel-pulse")})
    ds = D.make_dataset(gt, labels_to_use=["mel-pulse"], geometry=GEOMETRY, validation_files=["b.wav"],
                        testing_files=["c.wav"])
    sets = ds.sounds.groupby("wav")["set"].agg(set).to_dict()
    assert sets == {"a.wav": {D.TRAINING}, "b.wav": {D.VALIDATION}, "c.wav": {D.TESTING}}


@pytest.mark.skipif(not (SHARED / "data" / "songexplorer-tutorial").is_dir(), reason="../shared not present")
def test_tutorial_split_matches_songexplorers_log(tmp_path):
    tutorial = SHARED / "data" / "songexplorer-tutorial"
    for name in ("PS_20130625111709_ch3.wav", "PS_20130625111709_ch3.wav-annotated-person1.csv"):
        (tmp_path / name).symlink_to((tutorial / name).resolve())
    ds = D.make_dataset(tmp_path, labels_to_use=LABELS, geometry=GEOMETRY, validation_percentage=40)
    # train_1r.log measured running SongExplorer's test/tutorial.sh
    assert ds.counts(D.VALIDATION) == {"ambient": 6, "mel-pulse": 25, "mel-sine": 2}
    assert ds.counts(D.TRAINING) == {"ambient": 9, "mel-pulse": 48, "mel-sine": 9}


def test_equalize_balances_label_kind_groups(tmp_path):
    rows = many_rows(90, "mel-pulse") + many_rows(10, "ambient", first=22000, length=20)
    gt = ground_truth(tmp_path, {"a.wav": rows})
    rng = np.random.default_rng(5)
    balanced = D.make_dataset(gt, labels_to_use=["mel-pulse", "ambient"], geometry=GEOMETRY)
    labels = balanced.sounds["label_index"].to_numpy()[balanced.training_sounds(20000, rng)]
    assert abs(np.mean(labels == 1) - 0.5) < 0.02
    plain = D.make_dataset(gt, labels_to_use=["mel-pulse", "ambient"], geometry=GEOMETRY, equalize=False)
    labels = plain.sounds["label_index"].to_numpy()[plain.training_sounds(20000, rng)]
    assert abs(np.mean(labels == 1) - 0.1) < 0.02


def test_same_seed_same_batches(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": many_rows(30, "mel-pulse") + many_rows(5, "ambient", first=20000,
                                                                                   length=300)})
    ds = D.make_dataset(gt, labels_to_use=["mel-pulse", "ambient"], geometry=GEOMETRY)
    one = ds.training_batch(16, np.random.default_rng(11))
    two = ds.training_batch(16, np.random.default_rng(11))
    np.testing.assert_array_equal(one.audio, two.audio)
    three = ds.training_batch(16, np.random.default_rng(12))
    assert not np.array_equal(one.sounds, three.sounds)


def test_validation_examples_are_fixed_and_each_used_once(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": many_rows(80, "mel-pulse") + many_rows(20, "ambient", first=18000,
                                                                                   length=100)})
    ds = D.make_dataset(gt, labels_to_use=["mel-pulse", "ambient"], geometry=GEOMETRY, validation_percentage=50)
    first = list(ds.evaluation_batches(D.VALIDATION, 7, np.random.default_rng(1)))
    second = list(ds.evaluation_batches(D.VALIDATION, 100))
    sounds = np.concatenate([b.sounds for b in first])
    np.testing.assert_array_equal(np.sort(sounds), ds.indices(D.VALIDATION))
    np.testing.assert_array_equal(np.concatenate([b.offset_tic for b in first]), second[0].offset_tic)


def test_overlapped_targets_are_per_label_on_every_touched_tap(tmp_path):
    rows = [(10000, 11000, "not_mel-sine"), (10500, 10500, "mel-pulse"), (20000, 21000, "mel-sine"),
            (25000, 25000, "mel-pulse")]
    gt = ground_truth(tmp_path, {"a.wav": rows})
    ds = D.make_dataset(gt, labels_to_use=["mel-pulse", "mel-sine"], geometry=D.Geometry(512, 0, 4, 4),
                        loss="overlapped")
    assert ds.sounds["target"].tolist() == [0, 1, 1, 1]
    # use the pulse inside the not_mel-sine range: both labels are known on its central taps
    pulse = int(np.flatnonzero((ds.sounds["start"] == 10500).to_numpy())[0])
    batch = next(ds.evaluation_batches(D.TRAINING, 10))
    row = int(np.flatnonzero(batch.sounds == pulse)[0])
    targets = batch.targets[row]  # (P=4, 2 labels)
    assert targets.shape == (4, 2) and targets.dtype == np.int8
    np.testing.assert_array_equal(targets[:, 0], [2, 1, 1, 2])  # the pulse: its two central taps
    np.testing.assert_array_equal(targets[:, 1], [0, 0, 0, 0])  # not_mel-sine covers all taps
    lone = int(np.flatnonzero((ds.sounds["start"] == 25000).to_numpy())[0])
    row = int(np.flatnonzero(batch.sounds == lone)[0])
    np.testing.assert_array_equal(batch.targets[row][:, 1], [2, 2, 2, 2])  # nothing known of mel-sine there


def test_augmentation_statistics_and_its_own_stream():
    rng = np.random.default_rng(0)
    n, tics = 4000, 64
    ones = np.ones((n, tics, 1), np.float32)
    targets = np.tile(np.array([[0, 1]]), (n, 1))

    audio, _ = D.augment(ones.copy(), targets, D.Augmentation(volume=(0.5, 1.5)), rng)
    gains = audio[:, 0, 0]
    assert np.allclose(audio, gains[:, None, None])  # one gain per example and channel
    assert abs(gains.mean() - 1.0) < 0.02 and abs(gains.std() - 1 / np.sqrt(12)) < 0.02

    audio, _ = D.augment(np.zeros((n, tics, 1), np.float32), targets, D.Augmentation(noise=(0.1, 0.1)), rng)
    assert abs(audio.std() - 0.1) < 0.002 and abs(audio.mean()) < 0.002

    audio, _ = D.augment(np.zeros((n, tics, 1), np.float32), targets, D.Augmentation(dc=(-0.2, 0.2)), rng)
    assert np.allclose(audio, audio[:, :1]) and abs(audio[:, 0, 0].std() - 0.4 / np.sqrt(12)) < 0.01

    ramp = np.tile(np.arange(tics, dtype=np.float32)[None, :, None], (n, 1, 1))
    audio, flipped_targets = D.augment(ramp.copy(), targets, D.Augmentation(reverse=True), rng)
    reversed_rows = audio[:, 0, 0] == tics - 1
    assert 0.45 < reversed_rows.mean() < 0.55
    np.testing.assert_array_equal(audio[reversed_rows], ramp[reversed_rows, ::-1])
    np.testing.assert_array_equal(flipped_targets[reversed_rows], np.tile([[1, 0]], (reversed_rows.sum(), 1)))
    np.testing.assert_array_equal(flipped_targets[~reversed_rows], targets[~reversed_rows])

    audio, _ = D.augment(ones.copy(), targets, D.Augmentation(invert="yes"), rng)
    assert set(np.unique(audio)) == {-1.0, 1.0} and 0.45 < (audio[:, 0, 0] < 0).mean() < 0.55

    same = [D.augment(ones.copy(), targets, D.Augmentation(volume=(0.5, 2), noise=(0, 0.1)),
                      np.random.default_rng(9))[0] for _ in range(2)]
    np.testing.assert_array_equal(*same)


def test_augmentation_does_not_change_which_examples_are_drawn(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": many_rows(30, "mel-pulse")})
    ds = D.make_dataset(gt, labels_to_use=["mel-pulse"], geometry=GEOMETRY)
    plain = ds.training_batch(8, np.random.default_rng(4))
    noisy = ds.training_batch(8, np.random.default_rng(4), augmentation=D.Augmentation(noise=(0.01, 0.01)),
                              augment_rng=np.random.default_rng(99))
    np.testing.assert_array_equal(plain.offset_tic, noisy.offset_tic)
    assert not np.array_equal(plain.audio, noisy.audio)


# ---- bad input ---------------------------------------------------------------------------------


def test_a_label_without_annotations_is_named(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": many_rows(40, "mel-pulse")})
    with pytest.raises(D.DatasetError, match=r"no annotations of kind\(s\) \['annotated'\] with label\(s\) \['mel-sine'\]"):
        D.make_dataset(gt, labels_to_use=["mel-pulse", "mel-sine"], geometry=GEOMETRY)


def test_a_label_with_no_training_annotations_is_named(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": many_rows(40, "mel-pulse"), "b.wav": [(20000, 20000, "mel-sine")]})
    with pytest.raises(D.DatasetError, match=r"label\(s\) \['mel-sine'\] have no training annotations"):
        D.make_dataset(gt, labels_to_use=["mel-pulse", "mel-sine"], geometry=GEOMETRY,
                       validation_files=["b.wav"])


def test_fewer_annotations_than_a_mini_batch(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": many_rows(20, "mel-pulse")})
    with pytest.raises(D.DatasetError, match="only 20 training annotation.*mini-batch is 32.*at most 20"):
        D.make_dataset(gt, labels_to_use=["mel-pulse"], geometry=GEOMETRY, mini_batch=32)


def test_context_longer_than_a_recording(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": [(200, 200, "mel-pulse")]}, ntics=400)
    with pytest.raises(D.DatasetError, match=r"a.wav: the recording is 400 tics .* shorter than one example"):
        D.make_dataset(gt, labels_to_use=["mel-pulse"], geometry=GEOMETRY)


def test_annotations_too_close_to_an_edge_are_skipped_and_reported(tmp_path):
    rows = [(100, 100, "mel-pulse"), (29900, 29900, "mel-pulse"), (5000, 5000, "mel-pulse"),
            (10, 1000, "ambient"), (2000, 3000, "ambient")]
    gt = ground_truth(tmp_path, {"a.wav": rows})
    ds = D.make_dataset(gt, labels_to_use=["mel-pulse", "ambient"], geometry=GEOMETRY)
    assert sorted(ds.skipped["start"]) == [100, 29900]
    assert any("skipped 2 annotation(s) too close to an edge" in note for note in ds.notes)
    ambient = ds.sounds[ds.sounds["start"] == 10].iloc[0]
    assert ambient["first"] == 258 and ambient["last"] == 1000  # drawn only where a window fits
    offsets = ds.training_batch(2000, np.random.default_rng(0)).offset_tic
    assert offsets.min() >= 258 and offsets.max() <= 30000 - 258


def test_a_recording_at_the_wrong_rate_is_named(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": many_rows(5, "mel-pulse")})
    ramp_wav(tmp_path / "b.wav", rate=5000)
    write_intervals_csv(intervals_frame("b.wav", 3000, 3000, "annotated", "mel-pulse"),
                        tmp_path / "b.wav-annotated-person1.csv")
    with pytest.raises(RecordingError, match=r"b.wav: sample rate is 5000 Hz but this project expects 2500 Hz"):
        D.make_dataset(gt, labels_to_use=["mel-pulse"], geometry=GEOMETRY, rate=2500)
    with pytest.raises(RecordingError, match=r"b.wav: sample rate is 5000 Hz"):
        D.make_dataset(gt, labels_to_use=["mel-pulse"], geometry=GEOMETRY)  # the first one's rate


def test_a_csv_naming_a_missing_recording(tmp_path):
    write_intervals_csv(intervals_frame("gone.wav", 3000, 3000, "annotated", "mel-pulse"),
                        tmp_path / "gone.wav-annotated-person1.csv")
    with pytest.raises(D.DatasetError, match=r"names recording 'gone.wav', which is not in"):
        D.make_dataset(tmp_path, labels_to_use=["mel-pulse"], geometry=GEOMETRY)


def test_kinds_select_rows_and_recordings_in_subfolders_are_found(tmp_path):
    ground_truth(tmp_path / "round1", {"a.wav": many_rows(10, "mel-pulse")})
    write_intervals_csv(intervals_frame("a.wav", [5000, 6000], [5000, 6000], "detected", "time"),
                        tmp_path / "round1" / "a.wav-detected.csv")
    ds = D.make_dataset(tmp_path, labels_to_use=["mel-pulse", "time"], kinds_to_use=["annotated", "detected"],
                        geometry=GEOMETRY)
    assert ds.counts(D.TRAINING) == {"mel-pulse": 10, "time": 2}
    assert set(ds.sounds["recording"]) == {"round1/a.wav"}
    only = D.make_dataset(tmp_path, labels_to_use=["mel-pulse"], geometry=GEOMETRY)
    assert set(only.sounds["kind"]) == {"annotated"}


def test_overlapped_targets_match_a_brute_force_reference(tmp_path):
    """Random overlapping point/range annotations of two labels and their absences: every
    example's targets equal those computed one annotation at a time (own annotation last)."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(150):
        start = int(rng.integers(1000, 28000))
        rows.append((start, start + int(rng.integers(0, 400)) * int(rng.random() < 0.6),
                     str(rng.choice(["a", "not_a", "b", "not_b"]))))
    ds = D.make_dataset(ground_truth(tmp_path, {"x.wav": rows}), labels_to_use=["a", "b"],
                        geometry=D.Geometry(512, 0, 4, 8), loss="overlapped", validation_percentage=30)
    start, stop = ds.sounds["start"].to_numpy(), ds.sounds["stop"].to_numpy()
    label, target = ds.sounds["label_index"].to_numpy(), ds.sounds["target"].to_numpy()
    checked = 0
    for which in (D.TRAINING, D.VALIDATION):
        same_set = ds.indices(which)
        for batch in ds.evaluation_batches(which, 64):
            for targets, i, offset in zip(batch.targets, batch.sounds, batch.offset_tic):
                expected = np.full((8, 2), 2, np.int8)
                for k in [k for k in same_set if k != i] + [i]:
                    taps = ds.geometry.tap_mask(np.array([start[k] - offset]), np.array([stop[k] - offset]))[0]
                    expected[taps, label[k]] = target[k]
                np.testing.assert_array_equal(targets, expected)
                checked += 1
    assert checked == 150


def test_mix_lays_scaled_song_over_real_background_and_leaves_background_alone(tmp_path):
    # ramp recording: tic t holds t / 32768, so a window's slope tells the gain and its level where
    # the background was cut
    rows = many_rows(30, "mel-pulse") + many_rows(5, "ambient", first=20000, length=1000)
    gt = ground_truth(tmp_path, {"a.wav": rows})
    ds = D.make_dataset(gt, labels_to_use=["mel-pulse", "ambient"], geometry=GEOMETRY)
    params = D.Augmentation(background_label="ambient", mix=(0.1, 1.0))
    plain = ds.training_batch(400, np.random.default_rng(4))
    mixed = ds.training_batch(400, np.random.default_rng(4), augmentation=params, augment_rng=np.random.default_rng(9))
    np.testing.assert_array_equal(plain.targets, mixed.targets)
    song = ds.sounds["label"].to_numpy()[mixed.sounds] == "mel-pulse"
    assert 0 < song.sum() < len(song)
    np.testing.assert_array_equal(plain.audio[~song], mixed.audio[~song])  # background untouched
    audio = mixed.audio[song, :, 0].astype(np.float64) * 32768
    gain = (audio[:, -1] - audio[:, 0]) / (audio.shape[1] - 1) - 1.0  # slope = gain + 1
    assert gain.min() >= 0.1 - 1e-3 and gain.max() <= 1.0 + 1e-3
    assert abs(np.median(np.log(gain)) - np.log(np.sqrt(0.1))) < 0.15  # log-uniform
    song_start = plain.audio[song, 0, 0].astype(np.float64) * 32768
    background_start = audio[:, 0] - gain * song_start
    first, last = 20000 - GEOMETRY.before_tics, 22000 - GEOMETRY.before_tics  # windows of the ambient ranges
    assert np.all((background_start > first - 2) & (background_start < last + 1000))
    # mix_labels limits the mixing to some labels (here none of the song: nothing changes)
    only_background = D.Augmentation(background_label="ambient", mix=(0.1, 1.0), mix_labels="ambient")
    untouched = ds.training_batch(400, np.random.default_rng(4), augmentation=only_background,
                                  augment_rng=np.random.default_rng(9))
    np.testing.assert_array_equal(plain.audio, untouched.audio)
    with pytest.raises(D.DatasetError, match=r"mix_labels \['song'\] are not labels in use"):
        ds.training_batch(8, np.random.default_rng(1), augmentation=D.Augmentation(
            background_label="ambient", mix=(0.5, 1.0), mix_labels=("song",)))
    with pytest.raises(D.DatasetError, match="needs background_label"):
        D.Augmentation(mix=(0.5, 1.0))
    with pytest.raises(D.DatasetError, match="'noise' is not one of the labels"):
        ds.training_batch(8, np.random.default_rng(1), augmentation=D.Augmentation(background_label="noise",
                                                                                    mix=(0.5, 1.0)))


def test_annotation_durations_give_the_shortest_gap_between_points(tmp_path):
    rows = [(2000, 2000, "mel-pulse"), (2100, 2100, "mel-pulse"), (2160, 2160, "mel-pulse"),
            (9000, 9500, "ambient"), (12000, 12800, "ambient")]
    gt = ground_truth(tmp_path, {"a.wav": rows, "b.wav": [(3000, 3000, "mel-pulse"), (3040, 3040, "mel-pulse")]})
    ds = D.make_dataset(gt, labels_to_use=["mel-pulse", "ambient"], geometry=GEOMETRY, validation_percentage=0)
    table = D.annotation_durations(ds).set_index("label")
    assert table.loc["mel-pulse", "shortest_gap_s"] == pytest.approx(40 / RATE)  # b.wav's, never across files
    assert np.isnan(table.loc["ambient", "shortest_gap_s"])
    assert table.loc["ambient", "shortest_range_s"] == pytest.approx(500 / RATE)


def test_exclusive_negatives_mark_not_labels_and_are_ignored_without_the_option(tmp_path):
    rows = [(10000, 11000, "not_mel-pulse"), (15000, 15000, "mel-pulse"), (20000, 21000, "mel-sine"),
            (25000, 25000, "mel-pulse")]
    gt = ground_truth(tmp_path, {"a.wav": rows})
    geometry = D.Geometry(512, 0, 4, 4)
    plain = D.make_dataset(gt, labels_to_use=["mel-pulse", "mel-sine"], geometry=geometry)
    assert "not_mel-pulse" not in set(plain.sounds["label"])  # SongExplorer's exclusive loss ignores them
    ds = D.make_dataset(gt, labels_to_use=["mel-pulse", "mel-sine"], geometry=geometry, negatives=True)
    assert ds.sounds["target"].tolist() == [0, 1, 1, 1]
    batch = next(ds.evaluation_batches(D.TRAINING, 10))
    negative = int(np.flatnonzero((ds.sounds["label"] == "not_mel-pulse").to_numpy())[0])
    row = int(np.flatnonzero(batch.sounds == negative)[0])
    np.testing.assert_array_equal(batch.targets[row], [-2, -2, -2, -2])  # -2 - index of mel-pulse (0)
    sine = int(np.flatnonzero((ds.sounds["label"] == "mel-sine").to_numpy())[0])
    np.testing.assert_array_equal(batch.targets[int(np.flatnonzero(batch.sounds == sine)[0])], [1, 1, 1, 1])


def test_negatives_alone_do_not_count_as_annotations_of_a_label(tmp_path):
    gt = ground_truth(tmp_path, {"a.wav": many_rows(40, "mel-pulse") + [(20000, 21000, "not_mel-sine")]})
    with pytest.raises(D.DatasetError, match=r"with label\(s\) \['mel-sine'\]"):
        D.make_dataset(gt, labels_to_use=["mel-pulse", "mel-sine"], geometry=GEOMETRY, negatives=True)


def test_labels_to_learn_leave_out_not_labels():
    frame = intervals_frame("a.wav", [1, 2, 3, 4], [1, 2, 9, 9], "annotated",
                            ["mel-pulse", "mel-pulse", "not_mel-pulse", "mel-sine"])
    assert D.labels_to_learn(frame) == ["mel-pulse", "mel-sine"]


def test_a_label_annotated_both_ways_is_reported_with_file_and_line_and_taken_for_its_majority(tmp_path):
    rows = many_rows(6, "mel-sine", length=100) + [(4000, 4000, "mel-sine")] + many_rows(4, "mel-pulse", first=9000)
    gt = ground_truth(tmp_path, {"a.wav": rows})
    ds = D.make_dataset(gt, labels_to_use=["mel-sine", "mel-pulse"], geometry=GEOMETRY, validation_percentage=0)
    mixed = [note for note in ds.notes if "mel-sine" in note]
    assert mixed[0].startswith("label 'mel-sine' is annotated as ranges (6 ranges, 1 point): treated as ranges")
    assert mixed[1].startswith(f"{gt / 'a.wav-annotated-person1.csv'}: line 7: label 'mel-sine' is annotated as "
                               f"ranges elsewhere") and "make row 7 a range" in mixed[1]
    assert not any("mel-pulse" in note for note in ds.notes)
    table = D.annotation_durations(ds).set_index("label")
    assert (table.loc["mel-sine", "kind"], table.loc["mel-pulse", "kind"]) == ("ranges", "points")
