"""Navigation (SongExplorer's pan/zoom buttons) and the cluster file the cluster view reads."""

import pandas as pd
import pytest

from songexplorer_annotator.cluster import ClusterError, filter_sounds, nearest_sounds, read_cluster_table
from songexplorer_annotator.viewport import MIN_WIDTH_TICS, Viewport


def test_zoom_keeps_the_centre_and_stays_within_20_tics_and_the_recording():
    view = Viewport.initial(ntics=100_000, default_width=10_000)
    assert (view.start, view.width) == (0, 10_000)
    view = view.centred_on(50_000)
    assert (view.start, view.stop) == (45_000, 55_000)
    zoomed = view.zoom_in()
    assert (zoomed.start, zoomed.width) == (47_500, 5_000)
    for _ in range(20):
        zoomed = zoomed.zoom_in()
    assert zoomed.width == MIN_WIDTH_TICS and abs(zoomed.centre - 50_000) <= 1  # no drift
    for _ in range(20):
        zoomed = zoomed.zoom_out()
    assert (zoomed.start, zoomed.width) == (0, 100_000)
    assert zoomed.reset().width == 10_000


def test_pan_moves_half_a_width_and_stops_at_the_ends():
    view = Viewport.initial(ntics=30_000, default_width=10_000)
    assert view.pan(-0.5).start == 0
    assert view.pan(0.5).start == 5_000
    assert view.to_end().stop == 30_000 and view.to_end().pan(0.5).stop == 30_000
    assert view.to_end().to_start().start == 0
    assert view.showing(100, 200) is view  # already visible: the view does not jump
    assert view.showing(20_000, 20_010).start == 15_005


def test_a_recording_shorter_than_the_default_width_is_shown_whole():
    view = Viewport.initial(ntics=500, default_width=10_000)
    assert (view.start, view.width) == (0, 500) and view.zoom_out().width == 500


def table(**overrides):
    frame = pd.DataFrame(dict(wav=["a.wav", "round1%2Fb.wav", "gone.wav", "a.wav"], start=[0, 10, 5, 40],
                              stop=[9, 19, 6, 49], kind=["annotated", "detected", "detected", "detected"],
                              label=["pulse", "time", "time", "time"], x=[0.0, 1.0, 2.0, 3.0], y=[0.0, 0.0, 0.0, 3.0]))
    return frame.assign(**overrides)


def key_for(name):
    return {"a.wav": "a.wav", "b.wav": "round1%2Fb.wav", "round1%2Fb.wav": "round1%2Fb.wav"}.get(name)


def test_cluster_table_maps_rows_to_recordings_and_counts_the_rest(tmp_path):
    path = tmp_path / "cluster.parquet"
    assert read_cluster_table(path, key_for) is None  # no clusters yet
    table().to_parquet(path)
    clusters = read_cluster_table(path, key_for)
    assert clusters.sounds["recording"].tolist() == ["a.wav", "round1%2Fb.wav", "a.wav"]
    assert clusters.unmatched == 1 and not clusters.has_z
    nearest = nearest_sounds(clusters.sounds, 0.9, 0.1, 2)
    assert nearest["start"].tolist() == [10, 0]
    inside = nearest_sounds(clusters.sounds, 0.0, 0.0, 5, box=(2.5, 3.5, 2.5, 3.5))
    assert inside["start"].tolist() == [40]
    assert filter_sounds(clusters.sounds, kinds=["detected"])["start"].tolist() == [10, 40]
    assert filter_sounds(clusters.sounds, labels=["pulse"])["start"].tolist() == [0]


def test_a_cluster_file_without_the_columns_is_named(tmp_path):
    path = tmp_path / "cluster.parquet"
    table().drop(columns=["y"]).to_parquet(path)
    with pytest.raises(ClusterError, match=r"cluster.parquet: lacks column\(s\) \['y'\]"):
        read_cluster_table(path, key_for)
    path.write_text("not parquet")
    with pytest.raises(ClusterError, match="not a readable Parquet file"):
        read_cluster_table(path, key_for)
