"""``songexplorer classify WAV... --model CKPT --out-dir DIR``: per-label probabilities.

Writes, per recording, SongExplorer's probability WAVs ``<stem>-<label>.wav`` (int16 p*32767 at
the output rate, 625 Hz by default) and/or ``<wav>-probabilities.npz`` into ``--out-dir``, each
file atomically, and ``<wav>-classify.json`` naming the model and each file's digest, last
(``classify.write_classify_outputs``: ethogram refuses a set a kill left half-written). A
recording that cannot be classified is reported by name and skipped; the others are still
written, and the exit status is 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from songexplorer_cli.options import LabelsOption, add_compute_options, configure_compute_from, positive_int, progress_bar, add_audio_options
from songexplorer_core.classify import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SPAN_TICS,
    EDGES,
    ClassifyError,
    Classifier,
    write_classify_outputs,
)

FORMATS = ("wav", "npz")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="compute per-label probabilities of recordings with a trained model",
        description="Classify recordings with a trained checkpoint (SongExplorer's classify): one "
        "probability per label every stride (1.6 ms by default), sample k centred on tic "
        "k*stride. Written as SongExplorer's probability WAVs <stem>-<label>.wav and/or "
        "<wav>-probabilities.npz. The network runs over long overlapping spans, many per call; "
        "the probabilities do not depend on --parallelize or --batch-size.",
    )
    parser.add_argument("recordings", nargs="+", metavar="WAV", help="recordings (16-bit WAV at the model's rate)")
    parser.add_argument("--model", required=True, metavar="CKPT_DIR",
                        help="trained-model folder, e.g. <train dir>/ckpt-300 (model.keras + model.json)")
    parser.add_argument("--out-dir", required=True, metavar="DIR", help="folder for the outputs (created if missing)")
    parser.add_argument("--labels", metavar="A,B,C", action=LabelsOption,
                        help="labels the --prevalences refer to, in their order; must be the model's "
                        "labels in any order (default: the model's labels.txt order)")
    parser.add_argument("--prevalences", metavar="X,Y,Z",
                        help="expected prevalence of each label (any positive scale, e.g. seconds of "
                        "each): exclusive probabilities are re-weighted by Bayes' rule "
                        "(default: none, i.e. as trained)")
    parser.add_argument("--parallelize", type=positive_int, default=DEFAULT_SPAN_TICS // 4, metavar="TAPS",
                        help="output taps computed per span (SongExplorer's 'parallelize classify'); "
                        "spans overlap by one context window (default %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help="spans per network call (default %(default)s)")
    parser.add_argument("--edges", choices=EDGES, default="songexplorer",
                        help="'songexplorer': SongExplorer's length, the first context/2 zero and the last "
                        "context/2 without samples; 'median': cover the whole recording, padding the audio "
                        "beyond its ends with the median of the nearest context (default %(default)s)")
    parser.add_argument("--format", default="wav,npz", metavar="wav,npz",
                        help="what to write: 'wav' (SongExplorer's probability WAVs), 'npz' (one file, "
                        "float32 with metadata) or both (default %(default)s)")
    parser.add_argument("--npz-dtype", choices=("float32", "float16"), default="float32",
                        help="precision of the .npz (float16 halves its size; default %(default)s)")
    add_compute_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    add_audio_options(parser)
    parser.set_defaults(func=run)


def parse_prevalences(labels_text: str | None, prevalences_text: str | None, model_labels) -> dict | None:
    """``--labels``/``--prevalences`` as ``{label: prevalence}`` (``None`` without prevalences)."""
    if not prevalences_text:
        return None
    try:
        values = [float(x) for x in prevalences_text.split(",")]
    except ValueError:
        raise ClassifyError(f"--prevalences must be comma-separated numbers, got {prevalences_text!r}") from None
    labels = labels_text.split(",") if labels_text else list(model_labels)
    if sorted(labels) != sorted(model_labels):
        raise ClassifyError(f"--labels {labels} must be the model's labels {list(model_labels)} in any order")
    if len(values) != len(labels):
        raise ClassifyError(f"{len(values)} prevalence(s) for {len(labels)} labels {labels}: give one per label")
    return dict(zip(labels, values))


def run(args) -> int:

    formats = [x.strip() for x in args.format.split(",") if x.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"--format must list some of {FORMATS}, got {args.format!r}")
    configure_compute_from(args)  # before TensorFlow does any work
    from songexplorer_core.models import load_trained_model, model_identity

    trained = load_trained_model(args.model)
    identity = model_identity(args.model)
    prevalences = parse_prevalences(args.labels, args.prevalences, trained.labels)
    classifier = Classifier(trained, span_tics=args.parallelize * trained.stride_tics, batch_size=args.batch_size)
    out_dir = Path(args.out_dir)
    recordings = [Path(p) for p in args.recordings]
    names = [p.name for p in recordings]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"several recordings share the names {clashes}; their outputs would overwrite each other: "
                         f"run them with different --out-dir")
    failures = []
    for path in recordings:
        bar, progress = progress_bar(path.name, "sample", disable=args.no_progress, unit_scale=True, leave=False)

        try:
            probs = classifier.classify_recording(path, prevalences=prevalences, edges=args.edges,
                                                  progress=progress)
        except (ValueError, OSError) as error:
            bar.close()
            failures.append(path)
            tqdm.write(f"songexplorer classify: error: {error}", file=sys.stderr)
            continue
        bar.close()
        written = write_classify_outputs(probs, out_dir, path.name, model=identity, formats=formats,
                                         npz_dtype=args.npz_dtype)
        print(f"{path.name}: {probs.nsamples} samples at {probs.output_rate:g} Hz, labels "
              f"{', '.join(probs.labels)} -> {', '.join(p.name for p in written)}")
    if failures:
        print(f"songexplorer classify: {len(failures)} of {len(recordings)} recording(s) failed, nothing "
              f"written for them: {', '.join(str(p) for p in failures)}", file=sys.stderr)
        return 1
    return 0
