"""Time the annotator's recording view on a long recording, without a browser.

    python -m songexplorer_annotator.benchmark /tmp/annotator-bench [--minutes 60]

Creates (once) a project with one noise recording of ``--minutes`` minutes at 2500 Hz and prints
the median time to open it (overview + first window), pan, render wide windows and prepare
playback, and how many points are sent for the widest view.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile

from songexplorer_annotator.app import AnnotatorApp
from songexplorer_core.project import init_project

RATE = 2500


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="project folder to create (reused if it exists)")
    parser.add_argument("--minutes", type=int, default=60, help="length of the recording, minutes (default 60)")
    args = parser.parse_args(argv)
    project = init_project(Path(args.directory))
    wav = project.groundtruth / f"noise-{args.minutes}min.wav"
    if not wav.exists():
        rng = np.random.default_rng(0)
        with soundfile.SoundFile(str(wav), "w", RATE, 1, "PCM_16") as handle:
            for _ in range(args.minutes):
                handle.write(rng.normal(0, 200, 60 * RATE).astype(np.int16))
    app = AnnotatorApp(project, annotator="bench")
    view = app.recording_view
    key = wav.name
    print(f"recording: {args.minutes} min at {RATE} Hz ({wav.stat().st_size / 1e6:.0f} MB); medians:")
    print(f"  open (overview + first 4 s window): {_median_seconds(lambda: view.open_recording(key), 3):.3f} s")
    print(f"  pan half a 4 s window:              {_median_seconds(lambda: view.navigate('right'), 9):.4f} s")
    for minutes in (10, args.minutes):
        view.view = view.view.around(view.view.centre, minutes * 60 * RATE)
        print(f"  render a {minutes:>3} min window:            {_median_seconds(view.render, 3):.3f} s")
    image = view.plots.spectrogram_source.data["image"][0]
    print(f"  sent for the widest window: {len(view.plots.wave_source.data['t'])} waveform points, "
          f"{image.shape[1]} x {image.shape[0]} spectrogram cells")
    view.view = view.view.around(view.view.centre, 4 * RATE)

    def play():
        app.playback.window = None
        app.playback.toggle()
        app.playback.toggle()

    print(f"  playback WAV of a 4 s window:       {_median_seconds(play, 9):.4f} s")


if __name__ == "__main__":
    main()
