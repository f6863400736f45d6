"""The annotation session model: every SongExplorer gesture (docs/annotator.md), undo/redo, and saves that
merge with the files on disk so that two sessions on one recording lose nothing."""

import threading

import pytest

from songexplorer_core.annotation_session import (
    AnnotationSession,
    SessionError,
    Sound,
    proximity_tics,
)
from songexplorer_core.annotations import AnnotationError, intervals_frame, write_intervals_csv

KEY = "round1%2Frec.wav"  # recording groundtruth/round1/rec.wav
NTICS = 10_000


@pytest.fixture
def groundtruth(tmp_path):
    root = tmp_path / "groundtruth"
    (root / "round1").mkdir(parents=True)
    (root / "round1" / "rec.wav").write_bytes(b"")  # the session never reads audio
    return root


def detections():
    # a long detected interval containing a short one, and one on its own
    return intervals_frame("rec.wav", [1000, 1200, 5000], [1999, 1260, 5400], "detected", ["time", "frequency", "time"])


def open_session(groundtruth, name="alice", label="mel-pulse", **kw):
    session = AnnotationSession(groundtruth, name, label=label)
    session.open_recording(KEY, ntics=NTICS, other_sounds=kw.get("other_sounds", detections()))
    return session


def csv_rows(path):
    return path.read_text().splitlines() if path.exists() else []


def own_csv(groundtruth, name="alice"):
    return groundtruth / "round1" / f"rec.wav-annotated-{name}.csv"


def write_seed(groundtruth, rows):
    wav, start, stop, kind, label = zip(*rows)
    return write_intervals_csv(intervals_frame(wav, start, stop, kind, label),
                               groundtruth / "round1" / "rec.wav-annotated-seed.csv")


# ---------------------------------------------------------------------------------------------
# gestures


def test_double_click_lower_in_empty_space_adds_a_point_and_save_writes_it(groundtruth):
    session = open_session(groundtruth)
    action = session.double_click_lower(KEY, 3210.4, proximity=5)
    assert action.added == (Sound(KEY, 3210, 3210, "annotated", "mel-pulse"),)
    assert session.unsaved_changes() == 1
    report = session.save()
    assert report.written == (own_csv(groundtruth),)
    assert csv_rows(own_csv(groundtruth)) == ["rec.wav,3210,3210,annotated,mel-pulse"]
    assert session.unsaved_changes() == 0


def test_double_click_lower_on_an_annotation_removes_it_within_proximity_only(groundtruth):
    session = open_session(groundtruth)
    session.drag(KEY, 2000, 2100)
    session.double_click_lower(KEY, 3000)
    # 5 tics right of the range's end, proximity 5: the range goes
    action = session.double_click_lower(KEY, 2105, proximity=5)
    assert action.removed == (Sound(KEY, 2000, 2100, "annotated", "mel-pulse"),) and not action.added
    # 6 tics left of the point, proximity 5: a new point instead
    action = session.double_click_lower(KEY, 2994, proximity=5)
    assert action.added == (Sound(KEY, 2994, 2994, "annotated", "mel-pulse"),)
    assert [s.ticks for s in session.annotations(KEY)] == [(2994, 2994), (3000, 3000)]


def test_double_click_lower_checks_the_last_annotation_starting_before_the_click(groundtruth):
    # SongExplorer's rule: the candidate is the last annotation with start <= x + proximity; a long
    # annotation that starts earlier and covers x is not removed if a later one is the candidate.
    session = open_session(groundtruth)
    session.drag(KEY, 100, 900)
    session.drag(KEY, 300, 310)
    action = session.double_click_lower(KEY, 500)  # inside the long one, after the short one
    assert action.added == (Sound(KEY, 500, 500, "annotated", "mel-pulse"),)
    action = session.double_click_lower(KEY, 305)
    assert action.removed == (Sound(KEY, 300, 310, "annotated", "mel-pulse"),)


def test_without_a_label_double_click_does_nothing_and_drag_says_what_to_do(groundtruth):
    session = open_session(groundtruth, label="")
    assert session.double_click_lower(KEY, 100) is None
    assert session.double_click_upper(KEY, 5100) is None
    with pytest.raises(SessionError, match="choose a label"):
        session.drag(KEY, 10, 20)
    assert session.annotations(KEY) == [] and not session.can_undo


def test_drag_annotates_the_range_either_way_clamped_to_the_recording(groundtruth):
    session = open_session(groundtruth, label="mel-sine")
    session.drag(KEY, 700.6, 400.2)
    session.drag(KEY, 9990, 12_000)
    assert [s.ticks for s in session.annotations(KEY)] == [(400, 701), (9990, NTICS - 1)]
    session.save()
    assert csv_rows(own_csv(groundtruth)) == ["rec.wav,400,701,annotated,mel-sine",
                                              f"rec.wav,9990,{NTICS - 1},annotated,mel-sine"]


def test_double_click_upper_annotates_the_shortest_detected_sound_and_toggles_it_off(groundtruth):
    session = open_session(groundtruth, label="mel-pulse")
    action = session.double_click_upper(KEY, 1230)  # inside both 1000-1999 and 1200-1260
    assert action.added == (Sound(KEY, 1200, 1260, "annotated", "mel-pulse"),)
    action = session.double_click_upper(KEY, 1500)  # only inside the long one
    assert action.added == (Sound(KEY, 1000, 1999, "annotated", "mel-pulse"),)
    action = session.double_click_upper(KEY, 1230)  # again: toggles the short one off
    assert action.removed == (Sound(KEY, 1200, 1260, "annotated", "mel-pulse"),)
    assert session.double_click_upper(KEY, 3000) is None  # no sound there
    assert session.double_click_upper(KEY, 4995, proximity=5) is not None  # within proximity of 5000


def test_adding_the_same_ticks_replaces_and_undo_brings_the_old_label_back(groundtruth):
    session = open_session(groundtruth, label="mel-pulse")
    session.double_click_upper(KEY, 5100)
    session.label = "mel-sine"
    session.drag(KEY, 5000, 5400)
    assert [(s.ticks, s.label) for s in session.annotations(KEY)] == [((5000, 5400), "mel-sine")]
    session.undo()
    assert [(s.ticks, s.label) for s in session.annotations(KEY)] == [((5000, 5400), "mel-pulse")]


def test_undo_redo_walk_the_history_and_a_new_action_drops_the_redo_tail(groundtruth):
    session = open_session(groundtruth)
    a = session.double_click_lower(KEY, 100).added[0]
    b = session.double_click_lower(KEY, 200).added[0]
    session.double_click_lower(KEY, 100)  # removes a
    assert session.annotations(KEY) == [b]
    assert session.undo().sound == a and session.annotations(KEY) == [a, b]
    assert session.undo().sound == b and session.annotations(KEY) == [a]
    assert session.redo().sound == b and session.annotations(KEY) == [a, b]
    assert session.undo().sound == b
    c = session.double_click_lower(KEY, 300).added[0]  # truncates the redo tail
    assert not session.can_redo and session.redo() is None
    assert session.annotations(KEY) == [a, c]
    assert session.undo() and session.undo() and session.undo() is None
    assert session.annotations(KEY) == []


def test_neighbour_jumps_between_used_and_annotated_sounds(groundtruth):
    session = open_session(groundtruth)
    session.double_click_lower(KEY, 3000)
    assert session.neighbour(KEY, 1000, +1).ticks == (1200, 1260)
    assert session.neighbour(KEY, 1260, +1).ticks == (3000, 3000)
    assert session.neighbour(KEY, 5000, -1).ticks == (3000, 3000)
    assert session.neighbour(KEY, 5000, +1) is None
    assert session.neighbour(KEY, 5000, -1, kinds=["detected"]).ticks == (1200, 1260)


def test_counts_cover_every_opened_recording(groundtruth):
    (groundtruth / "other.wav").write_bytes(b"")
    session = open_session(groundtruth)
    session.open_recording("other.wav", ntics=500)
    session.double_click_lower(KEY, 10)
    session.double_click_lower("other.wav", 10)
    session.label = "ambient"
    session.drag("other.wav", 100, 200)
    assert session.counts() == {"mel-pulse": 2, "ambient": 1}


def test_proximity_is_three_pixels_in_tics():
    assert proximity_tics(window_tics=10_000, plot_width_pixels=1000) == 30
    assert proximity_tics(window_tics=100, plot_width_pixels=1000) == 0
    with pytest.raises(ValueError):
        proximity_tics(100, 0)


# ---------------------------------------------------------------------------------------------
# corrections of other people's annotations


def test_relabelling_a_seed_annotation_moves_it_into_the_own_file(groundtruth):
    seed = write_seed(groundtruth, [("rec.wav", 50, 60, "annotated", "mel-pulse"),
                                    ("rec.wav", 400, 800, "annotated", "mel-sine"),
                                    ("rec.wav", 900, 900, "annotated", "mel-pulse")])
    session = open_session(groundtruth, label="ambient")
    assert Sound(KEY, 400, 800, "annotated", "mel-sine") in session.used_sounds(KEY)
    session.double_click_upper(KEY, 600)
    assert Sound(KEY, 400, 800, "annotated", "mel-sine") not in session.used_sounds(KEY)
    session.save()
    assert csv_rows(seed) == ["rec.wav,50,60,annotated,mel-pulse", "rec.wav,900,900,annotated,mel-pulse"]
    assert csv_rows(own_csv(groundtruth)) == ["rec.wav,400,800,annotated,ambient"]


def test_an_empty_label_deletes_a_seed_annotation_and_undo_after_saving_restores_it(groundtruth):
    seed = write_seed(groundtruth, [("rec.wav", 50, 60, "annotated", "mel-pulse"),
                                    ("rec.wav", 400, 800, "annotated", "mel-sine")])
    session = open_session(groundtruth, label="")
    action = session.double_click_upper(KEY, 600)
    assert action.added == (Sound(KEY, 400, 800, "annotated", ""),)  # a deletion marker
    session.save()
    assert csv_rows(seed) == ["rec.wav,50,60,annotated,mel-pulse"]
    assert not own_csv(groundtruth).exists()  # nothing labelled: no own file
    session.undo()
    assert session.unsaved_changes() == 1
    session.save()
    assert csv_rows(seed) == ["rec.wav,50,60,annotated,mel-pulse", "rec.wav,400,800,annotated,mel-sine"]


def test_deleting_the_last_seed_row_deletes_the_file_and_leaves_other_recordings_rows(groundtruth):
    seed = write_seed(groundtruth, [("rec.wav", 50, 60, "annotated", "mel-pulse")])
    session = open_session(groundtruth, label="")
    session.double_click_upper(KEY, 55)
    assert session.save().deleted == (seed,)
    shared = write_seed(groundtruth, [("rec.wav", 50, 60, "annotated", "mel-pulse"),
                                      ("elsewhere.wav", 1, 2, "annotated", "mel-pulse")])
    session = open_session(groundtruth, label="")
    session.double_click_upper(KEY, 55)
    session.save()
    assert csv_rows(shared) == ["elsewhere.wav,1,2,annotated,mel-pulse"]


# ---------------------------------------------------------------------------------------------
# saving and concurrency


def test_save_with_nothing_changed_touches_nothing(groundtruth):
    session = open_session(groundtruth)
    session.double_click_lower(KEY, 10)
    session.save()
    mtime = own_csv(groundtruth).stat().st_mtime_ns
    assert session.save().changed == ()
    session.double_click_lower(KEY, 20)
    session.undo()
    assert session.unsaved_changes() == 0 and session.save().changed == ()
    assert own_csv(groundtruth).stat().st_mtime_ns == mtime


def test_removing_every_own_annotation_deletes_the_own_file(groundtruth):
    session = open_session(groundtruth)
    session.double_click_lower(KEY, 10)
    session.save()
    session.double_click_lower(KEY, 10)
    assert session.save().deleted == (own_csv(groundtruth),)
    assert not own_csv(groundtruth).exists()


def test_a_new_session_starts_from_the_own_file(groundtruth):
    first = open_session(groundtruth)
    first.drag(KEY, 10, 20)
    first.save()
    second = open_session(groundtruth)
    assert [s.ticks for s in second.annotations(KEY)] == [(10, 20)]
    second.double_click_lower(KEY, 15)  # removes the saved annotation
    second.save()
    assert not own_csv(groundtruth).exists()


def test_two_annotators_on_one_recording_each_keep_their_own_file(groundtruth):
    alice = open_session(groundtruth, "alice", label="mel-pulse")
    bob = open_session(groundtruth, "bob", label="mel-sine")
    alice.double_click_upper(KEY, 1230)
    bob.double_click_upper(KEY, 1230)  # the same detected sound, another label
    bob.save()
    alice.save()
    assert csv_rows(own_csv(groundtruth, "alice")) == ["rec.wav,1200,1260,annotated,mel-pulse"]
    assert csv_rows(own_csv(groundtruth, "bob")) == ["rec.wav,1200,1260,annotated,mel-sine"]


def test_two_sessions_of_one_annotator_merge_instead_of_overwriting(groundtruth):
    setup = open_session(groundtruth)
    for tic in (100, 200, 300):
        setup.double_click_lower(KEY, tic)
    setup.save()
    tab1 = open_session(groundtruth)
    tab2 = open_session(groundtruth)
    tab1.double_click_lower(KEY, 100)  # removes 100
    tab1.double_click_lower(KEY, 150)  # adds 150
    tab2.drag(KEY, 500, 600)  # adds 500-600
    tab1.save()
    tab2.save()  # must not bring 100 back nor lose 150
    expected = ["rec.wav,150,150,annotated,mel-pulse", "rec.wav,200,200,annotated,mel-pulse",
                "rec.wav,300,300,annotated,mel-pulse", "rec.wav,500,600,annotated,mel-pulse"]
    assert csv_rows(own_csv(groundtruth)) == expected
    # tab2 has adopted tab1's work; tab1 sees tab2's on its next save or reopen
    assert [s.start for s in tab2.annotations(KEY)] == [150, 200, 300, 500]
    tab1.open_recording(KEY, ntics=NTICS)
    assert [s.start for s in tab1.annotations(KEY)] == [150, 200, 300, 500]


def test_reopening_keeps_unsaved_edits_on_top_of_the_file(groundtruth):
    tab1 = open_session(groundtruth)
    tab2 = open_session(groundtruth)
    tab1.double_click_lower(KEY, 100)
    tab2.double_click_lower(KEY, 200)
    tab2.save()
    tab1.open_recording(KEY, ntics=NTICS)
    assert [s.start for s in tab1.annotations(KEY)] == [100, 200] and tab1.unsaved_changes() == 1


def test_concurrent_saves_from_many_threads_lose_no_row(groundtruth):
    sessions = [open_session(groundtruth, "alice") for _ in range(6)]
    for index, session in enumerate(sessions):
        for tic in range(index * 1000, index * 1000 + 400, 20):
            session.double_click_lower(KEY, tic)
    barrier = threading.Barrier(len(sessions))
    errors = []

    def save(session):
        try:
            barrier.wait()
            session.save()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=save, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    starts = [int(line.split(",")[1]) for line in csv_rows(own_csv(groundtruth))]
    assert starts == sorted(i * 1000 + t for i in range(6) for t in range(0, 400, 20))


def test_a_malformed_own_file_is_reported_and_never_overwritten(groundtruth):
    path = own_csv(groundtruth)
    path.write_text("rec.wav,10,5,annotated,mel-pulse\n")
    session = AnnotationSession(groundtruth, "alice", label="mel-pulse")
    with pytest.raises(AnnotationError, match=r"(?s)rec.wav-annotated-alice.csv.*line 1.*before start"):
        session.open_recording(KEY, ntics=NTICS)
    assert session.recordings() == [] and session.save().changed == ()
    assert path.read_text() == "rec.wav,10,5,annotated,mel-pulse\n"


def test_rows_of_other_recordings_in_the_own_file_are_kept(groundtruth):
    path = own_csv(groundtruth)
    path.write_text("rec.wav,10,10,annotated,mel-pulse\nold-name.wav,5,6,annotated,ambient\n")
    session = open_session(groundtruth)
    session.double_click_lower(KEY, 10)  # remove rec.wav's only row
    session.save()
    assert csv_rows(path) == ["old-name.wav,5,6,annotated,ambient"]


def test_bad_annotator_names_and_keys_outside_groundtruth_are_refused(groundtruth):
    for name in ("", "../evil", "a/b", "x y"):
        with pytest.raises(AnnotationError, match="annotator name"):
            AnnotationSession(groundtruth, name)
    session = AnnotationSession(groundtruth, "alice")
    for key in ("..%2Fescape.wav", "round1%2F..%2F..%2Fescape.wav", "/etc/passwd"):
        with pytest.raises(ValueError):
            session.open_recording(key, ntics=10)
    with pytest.raises(SessionError, match="not open"):
        session.double_click_lower("never-opened.wav", 5)
