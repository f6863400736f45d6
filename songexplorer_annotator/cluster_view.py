"""The Cluster tab: the sounds of ``outputs/cluster/cluster.parquet`` as a scatter plot, and a grid
of spectrogram snippets of the sounds nearest a tapped point (or inside a selected box). A click on
a snippet shows its sound in the Recording tab; a double-click annotates it with the current label.
A tap also selects the group the sound lies in, and the box and lasso tools select what they
enclose: *Label selection* annotates every selected sound at once (``cluster_labels``)."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable

import numpy as np
import pandas as pd
import panel as pn
from bokeh.events import DoubleTap, SelectionGeometry, Tap
from bokeh.models import (
    BoxSelectTool, ColumnDataSource, HoverTool, LassoSelectTool, LinearColorMapper, Range1d, TapTool,
)
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure

from songexplorer_annotator.catalog import AccessError, Recording
from songexplorer_annotator.cluster import (
    ClusterError, cluster_path, filter_sounds, inside_polygon, nearest_sounds, read_cluster_table,
)
from songexplorer_annotator.cluster_labels import SelectionLabeller
from songexplorer_annotator.signals import window_spectrogram
from songexplorer_annotator.ui import Shared, locked, locked_event
from songexplorer_core.annotation_session import SessionError, Sound
from songexplorer_core.audio import RecordingError


#: The Dagster UI's address: ``$SONGEXPLORER_DAGSTER_UI`` (scripts/start.sh sets it), else this.
DAGSTER_UI_ENV, DEFAULT_DAGSTER_UI = "SONGEXPLORER_DAGSTER_UI", "http://127.0.0.1:3000"
#: The Dagster code location that holds the jobs (``location_name`` in workspace.yaml).
DAGSTER_LOCATION = "songexplorer"
#: The Dagster jobs that write ``outputs/cluster/cluster.parquet`` (SongExplorer's review workflows,
#: ``songexplorer_dagster/defs/review/jobs.py``; each runs ``activations`` and ``cluster``), with
#: the sounds each one clusters.
CLUSTER_JOBS = {
    "label_sounds_job": "detected sounds, no model needed: start from zero, label whole groups here",
    "find_novel_labels_job": "annotated and detected sounds: find kinds of sound nobody labelled yet",
    "fix_false_positives_job": "annotated and predicted sounds: find false positives",
    "fix_false_negatives_job": "annotated and missed sounds: find what the model failed to call",
    "examine_errors_job": "detected and mistaken sounds: see what the model confuses",
}


def dagster_job_url(job: str) -> str:
    """The page of Dagster job ``job`` in the Dagster UI (Launchpad one click away)."""
    base = (os.environ.get(DAGSTER_UI_ENV) or DEFAULT_DAGSTER_UI).rstrip("/")
    return f"{base}/locations/{DAGSTER_LOCATION}/jobs/{job}"


def no_clusters_message(where: str) -> str:
    """The empty Cluster tab: which Dagster jobs fill it, linked to the Dagster UI."""
    jobs = "".join(
        f'<li><a href="{html.escape(dagster_job_url(job))}" target="_blank" rel="noopener noreferrer">'
        f"<code>{job}</code></a>: {html.escape(what)}</li>"
        for job, what in CLUSTER_JOBS.items()
    )
    return (
        f"<p><b>No clusters yet.</b> This tab shows <code>{html.escape(where)}</code>, which the "
        "<code>cluster</code> asset writes. Launch one of these Dagster jobs (each but the first needs a trained "
        f"model; it computes the model's activations at the sounds and clusters them):</p><ul>{jobs}</ul>"
        "<p>When the run has finished, press <i>Reload clusters</i>.</p>"
    )


class ClusterView:
    """The Cluster tab.

    Args:
        shared: the browser session's state.
        snippets: number of snippets in the grid.
        snippet_s: length of each snippet, seconds.
        centre_on: shows recording ``key`` centred on a tic in the Recording tab and returns it
            (``None`` when it cannot be opened).
        on_annotated: called with a recording's key after a snippet's sound was (un)annotated.
    """

    def __init__(self, shared: Shared, *, snippets: int, snippet_s: float,
                 centre_on: Callable[[str, float], Recording | None], on_annotated: Callable[[str], None]):
        self.shared = shared
        self.catalog = shared.catalog
        self.nsnippets = int(snippets)
        self.snippet_s = float(snippet_s)
        self._centre_on, self._on_annotated = centre_on, on_annotated
        self._cluster = None
        self._snippet_rows = pd.DataFrame()

        self.cluster_info = pn.pane.HTML("", width=shared.plot_width)
        self.cluster_refresh = pn.widgets.Button(label="Reload clusters", width=140)
        self.cluster_refresh.on_click(locked(lambda _event: self.load_clusters()))
        self.colour_by = pn.widgets.RadioButtonGroup(label="colour by", options=["label", "kind"], value="label")
        self.kind_filter = pn.widgets.MultiChoice(label="kinds", options=[], width=300)
        self.label_filter = pn.widgets.MultiChoice(label="labels", options=[], width=300)
        for widget in (self.colour_by, self.kind_filter, self.label_filter):
            widget.param.watch(locked(lambda _event: self._render_scatter()), "value")
        self._build_scatter()
        self._build_snippets()
        self.labeller = SelectionLabeller(shared, on_annotated=on_annotated, on_labelled=self.render_snippets)
        self.cluster_plots = pn.Column(self.labeller.layout,
                                       pn.Row(pn.pane.Bokeh(self.scatter), pn.pane.Bokeh(self.snippets)))
        self.layout = pn.Column(
            pn.Row(self.cluster_refresh, pn.pane.HTML("colour by", margin=(12, 4)), self.colour_by,
                   self.kind_filter, self.label_filter),
            self.cluster_info,
            self.cluster_plots,
        )
        self.load_clusters()

    def _build_scatter(self) -> None:
        self.scatter_source = ColumnDataSource(_empty_scatter())
        self.chosen_source = ColumnDataSource(dict(x=[], y=[]))
        self.scatter = figure(width=560, height=520, name="scatter", tools="pan,wheel_zoom,reset",
                              toolbar_location="above", title="sounds (tap a group, or box / lasso a region)")
        self.scatter.add_tools(BoxSelectTool(renderers=[]), LassoSelectTool(renderers=[]), TapTool(renderers=[]))
        points = self.scatter.scatter("x", "y", source=self.scatter_source, color="colour", size=6, alpha=0.7,
                                      legend_field="group")
        self.scatter.add_tools(HoverTool(renderers=[points], tooltips=[("recording", "@recording"),
                                                                        ("time", "@start_s{0.000}-@stop_s{0.000} s"),
                                                                        ("tics", "@start-@stop"),
                                                                        ("kind", "@kind"), ("label", "@label")]))
        self.scatter.scatter("x", "y", source=self.chosen_source, size=11, fill_alpha=0, line_color="black",
                             line_width=1.5)
        self.scatter.legend.click_policy = "hide"
        self.scatter.legend.label_text_font_size = "8pt"
        self.scatter.on_event(Tap, locked_event(self._scatter_tap))
        self.scatter.on_event(SelectionGeometry, locked_event(self._scatter_box))

    def _build_snippets(self) -> None:
        self.snippet_columns = 5
        nrows = max(1, math.ceil(self.nsnippets / self.snippet_columns))
        self.snippet_source = ColumnDataSource(dict(image=[], x=[], y=[], dw=[], dh=[]))
        self.snippet_text = ColumnDataSource(dict(x=[], y=[], text=[], colour=[]))
        self.snippet_mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        self.snippets = figure(width=560, height=110 * nrows + 30, name="snippets", tools="", toolbar_location=None,
                               x_range=Range1d(0, self.snippet_columns), y_range=Range1d(-nrows, 0),
                               title="nearest sounds: click to show, double-click to annotate")
        self.snippets.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.snippet_source,
                            color_mapper=self.snippet_mapper)
        self.snippets.rect(x="x", y="y", width=0.95, height=0.95, source=self.snippet_text, fill_alpha=0,
                           line_color="colour", line_width=2)
        self.snippets.text(x="x", y="y", text="text", source=self.snippet_text, text_font_size="8pt",
                           text_align="center", text_baseline="middle", text_color="white", y_offset=38)
        self.snippets.axis.visible = False
        self.snippets.grid.visible = False
        self.snippets.on_event(Tap, locked_event(self._snippet_tap))
        self.snippets.on_event(DoubleTap, locked_event(self._snippet_double_tap))

    def load_clusters(self) -> None:
        """(Re)read ``outputs/cluster/cluster.parquet``; say "no clusters yet" when it is absent."""
        root = self.shared.project.root
        path = cluster_path(self.catalog.outputs)
        try:
            table = read_cluster_table(path, self.catalog.key_for)
        except ClusterError as error:
            table = None
            self.cluster_info.object = f"<b>The cluster file cannot be shown.</b> {html.escape(str(error))}"
        else:
            if table is None:
                self.cluster_info.object = no_clusters_message(
                    str(path.relative_to(root) if root in path.parents else path))
        self._cluster = table
        self.cluster_plots.visible = table is not None
        if table is None:
            self.scatter_source.data = _empty_scatter()
            return
        sounds = table.sounds
        kinds = sorted(sounds["kind"].unique())
        labels = sorted(sounds["label"].unique())
        self.kind_filter.options, self.label_filter.options = kinds, labels
        self.colour_by.options = ["label", "kind", "group"] if table.has_groups else ["label", "kind"]
        groups = int(sounds["group"].max()) + 1 if table.has_groups and len(sounds) else 0
        self.cluster_info.object = (
            f"{len(sounds)} sounds from <code>{html.escape(table.path.name)}</code>"
            + (f" ({table.unmatched} rows name recordings this project does not have)" if table.unmatched else "")
            + (" · 3-D embedding shown as x/y" if table.has_z else "")
            + (f" · {groups} groups: tap a sound to select its group" if groups else "")
        )
        self._render_scatter()

    def _filtered_sounds(self) -> pd.DataFrame:
        sounds = self._cluster.sounds
        return filter_sounds(sounds, kinds=self.kind_filter.value or None, labels=self.label_filter.value or None)

    def _render_scatter(self) -> None:
        if self._cluster is None:
            return
        sounds = self._filtered_sounds()
        by = self.colour_by.value
        groups = sorted(self._cluster.sounds[by].unique())
        colours = {g: Category10_10[i % 10] for i, g in enumerate(groups)}
        rates = sounds["recording"].map({k: self._rate_of(k) for k in sounds["recording"].unique()}).to_numpy(
            dtype=float)  # tooltips in seconds
        self.scatter_source.data = dict(
            x=sounds["x"].to_numpy(), y=sounds["y"].to_numpy(), recording=sounds["recording"].to_numpy(),
            start=sounds["start"].to_numpy(), stop=sounds["stop"].to_numpy(),
            start_s=sounds["start"].to_numpy() / rates, stop_s=sounds["stop"].to_numpy() / rates,
            kind=sounds["kind"].to_numpy(),
            label=sounds["label"].to_numpy(), group=sounds[by].astype(str).to_numpy(),
            colour=[colours[g] for g in sounds[by]],
        )

    def _rate_of(self, key: str) -> float:
        """A recording's sample rate, Hz (NaN when it cannot be opened: its times show as NaN)."""
        try:
            return float(self.catalog.recording(key).rate)
        except (AccessError, RecordingError):
            return math.nan

    def _scatter_tap(self, event) -> None:
        if event.x is not None and event.y is not None:
            self.choose_snippets(event.x, event.y)
            self.select_group_at(event.x, event.y)

    def _scatter_box(self, event) -> None:
        geometry = event.geometry or {}
        if not getattr(event, "final", True) or self._cluster is None:
            return
        if geometry.get("type") == "rect":
            box = (geometry["x0"], geometry["x1"], geometry["y0"], geometry["y1"])
            self.choose_snippets((box[0] + box[1]) / 2, (box[2] + box[3]) / 2, box=box)
            self.labeller.select(nearest_sounds(self._filtered_sounds(), 0, 0, len(self._cluster.sounds), box=box),
                                 "the box")
        elif geometry.get("type") == "poly":
            inside = inside_polygon(self._filtered_sounds(), geometry["x"], geometry["y"])
            self.labeller.select(inside, "the lasso")
            self._snippet_rows = inside.head(self.nsnippets).reset_index(drop=True)
            self.chosen_source.data = dict(x=self._snippet_rows["x"].to_numpy(), y=self._snippet_rows["y"].to_numpy())
            self.render_snippets()

    def select_group_at(self, x: float, y: float) -> None:
        """Select the group of the (shown) sound nearest ``(x, y)``; just that sound if it is in none."""
        if self._cluster is None:
            return
        shown = self._filtered_sounds()
        nearest = nearest_sounds(shown, x, y, 1)
        if not len(nearest):
            return
        group = int(nearest["group"].iat[0]) if self._cluster.has_groups else -1
        if group < 0:
            self.labeller.select(nearest, "the sound tapped, in no group")
        else:
            self.labeller.select(shown[shown["group"] == group], f"group {group}")

    def choose_snippets(self, x: float, y: float, *, box=None) -> None:
        """Fill the snippet grid with the sounds nearest ``(x, y)`` (inside ``box`` if given)."""
        if self._cluster is None:
            return
        rows = nearest_sounds(self._filtered_sounds(), x, y, self.nsnippets, box=box)
        self._snippet_rows = rows.reset_index(drop=True)
        self.chosen_source.data = dict(x=rows["x"].to_numpy(), y=rows["y"].to_numpy())
        self.render_snippets()

    def render_snippets(self) -> None:
        """Draw the chosen sounds' spectrograms, marking those this session (un)annotated."""
        rows = self._snippet_rows
        images, xs, ys, centres_x, centres_y, texts, colours = [], [], [], [], [], [], []
        lows, highs = [], []
        annotated = {}  # (recording, start, stop) -> label of this session's annotation
        session = self.shared.session
        if session is not None:
            for key in session.recordings():
                for sound in session.annotations(key):
                    annotated[(sound.recording, sound.start, sound.stop)] = sound.label
        for index, row in enumerate(rows.itertuples(index=False)):
            try:
                recording = self.catalog.recording(row.recording)
            except (AccessError, RecordingError):
                continue
            half = int(self.snippet_s * recording.rate / 2)
            centre = (int(row.start) + int(row.stop)) // 2
            spec = window_spectrogram(recording.path, centre - half, centre + half, rate=recording.rate, max_columns=60)
            column, line = index % self.snippet_columns, index // self.snippet_columns
            images.append(spec.power)
            xs.append(column + 0.025)
            ys.append(-line - 1 + 0.025)
            lows.append(spec.low_db)
            highs.append(spec.high_db)
            centres_x.append(column + 0.5)
            centres_y.append(-line - 0.5)
            new_label = annotated.get((row.recording, int(row.start), int(row.stop)))
            texts.append(f"{row.label} · {row.kind}" + (f" → {new_label or '✕'}" if new_label is not None else ""))
            colours.append("#2ca02c" if new_label is not None else "#ffffff")
        self.snippet_source.data = dict(image=images, x=xs, y=ys, dw=[0.95] * len(images), dh=[0.95] * len(images))
        self.snippet_text.data = dict(x=centres_x, y=centres_y, text=texts, colour=colours)
        if images:
            self.snippet_mapper.low, self.snippet_mapper.high = float(np.median(lows)), float(np.max(highs))

    def _snippet_at(self, x: float, y: float):
        if x is None or y is None:
            return None
        column, line = int(math.floor(x)), int(math.floor(-y))
        index = line * self.snippet_columns + column
        if 0 <= column < self.snippet_columns and 0 <= index < len(self._snippet_rows):
            return self._snippet_rows.iloc[index]
        return None

    def _snippet_tap(self, event) -> None:
        row = self._snippet_at(event.x, event.y)
        if row is not None:
            self.show_snippet(row)

    def _snippet_double_tap(self, event) -> None:
        row = self._snippet_at(event.x, event.y)
        if row is not None:
            self.annotate_snippet(row)

    def show_snippet(self, row) -> None:
        """Centre the recording view on a snippet's sound."""
        recording = self._centre_on(str(row["recording"]), (int(row["start"]) + int(row["stop"])) / 2)
        if recording is not None:
            self.shared.show_info(f"the Recording tab now shows {row['recording']} at "
                                  f"{int(row['start']) / recording.rate:.3f} s ({row['label']}, {row['kind']})")

    def annotate_snippet(self, row) -> None:
        """Double-click on a snippet: toggle an annotation of its sound with the current label."""
        session = self.shared.session
        if session is None:
            return
        key = str(row["recording"])
        if key not in session.recordings():
            recording = self.catalog.recording(key)
            session.open_recording(key, ntics=recording.ntics, other_sounds=self.catalog.intervals(key))
        sound = Sound(key, int(row["start"]), int(row["stop"]), str(row["kind"]), str(row["label"]))
        try:
            action = session.toggle(key, sound)
        except SessionError as error:
            self.shared.show_error(str(error))
            return
        if action is None:
            self.shared.show_info("choose a label first: type one into a label box on the Recording tab")
        self.render_snippets()
        self._on_annotated(key)


def _empty_scatter() -> dict:
    return dict(x=[], y=[], recording=[], start=[], stop=[], start_s=[], stop_s=[], kind=[], label=[], group=[],
                colour=[])
