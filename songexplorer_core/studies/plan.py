"""What a study trains: one base ``TrainConfig`` and what varies, as a list of :class:`Trial`.

Every function here only plans: it reads annotations (no audio, no TensorFlow) and refuses bad
input before anything is written.

* :func:`xvalidate` - k folds of SongExplorer's stable validation assignment
  (``dataset.which_set``): fold ``i`` validates on the annotations whose hash percentage lies in
  the open slice ``(i * 100/k, (i + 1) * 100/k)`` (``validation_offset_percentage = i * 100/k``,
  ``validate_percentage = 100/k``), so the k validation sets are disjoint and together hold every
  annotation once. Negative k trains on that slice and validates on the rest (SongExplorer's
  ``validate_percentage < 0``).
* :func:`generalize` - whole recordings withheld (``validation_files``): ``omit="one"`` each
  recording in turn, ``omit="all-but-one"`` trains on one recording and validates on the
  others, ``groups=k`` recordings in k round-robin groups (sorted names, recording j in group
  ``j mod k``).
* :func:`sweep` - the grid of every combination of the given values of any training or model
  parameter (``learning_rate``, ``model.kernel_sizes`` or just ``kernel_sizes``, ...).
* :func:`replicates` - the same settings with seeds ``seed, seed + 1, ...``.
* :func:`learning_curve` - training on a growing fraction of the training annotations, chosen by
  a second stable hash so the sets are nested (10 % is inside 20 %) and validation stays the same.
* :func:`compose` - each trial of an outer study crossed with an inner study (a sweep of
  3-fold x-validations).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from songexplorer_core import dataset as D
from songexplorer_core import models as M
from songexplorer_core.train import TrainConfig

KINDS = ("xvalidate", "generalize", "sweep", "replicates", "learning-curve")


class StudyError(ValueError):
    """A study cannot be planned as asked; the message names what and the fix."""


@dataclass(frozen=True)
class Trial:
    """One training of a study.

    Attributes:
        name: its folder name inside the study folder (``xvalidate_1k``, ``omit_song1.wav``, ...).
        config: the settings it trains with.
        varied: what distinguishes it from the base config, ``{parameter: value}`` (logged as MLflow
            params; the comparison plots' x axis).
        fraction: learning curve only: the fraction of the training annotations kept (``None``: all).
        withheld: generalize only: the recordings (basenames) it validates on.
    """

    name: str
    config: TrainConfig
    varied: dict = field(default_factory=dict)
    fraction: float | None = None
    withheld: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "config": self.config.to_dict(), "varied": _jsonable(self.varied),
                "fraction": self.fraction, "withheld": list(self.withheld)}

    @classmethod
    def from_dict(cls, values: Mapping) -> Trial:
        return cls(name=values["name"], config=TrainConfig.from_dict(values["config"]),
                   varied=dict(values.get("varied", {})), fraction=values.get("fraction"),
                   withheld=tuple(values.get("withheld", ())))


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _annotations(ground_truth, config: TrainConfig) -> pd.DataFrame:
    """The annotations a training with ``config`` would use (labels and kinds), no audio read."""
    truth = D.as_ground_truth(ground_truth, kinds=config.kinds_to_use)
    table = truth.intervals
    table = table[table["kind"].isin(list(config.kinds_to_use))]
    labels = table["label"].astype(str)
    if config.loss == D.OVERLAPPED:
        labels = labels.str.removeprefix(config.overlapped_prefix)
    table = table.assign(root_label=labels.to_numpy())
    return table[table["root_label"].isin(list(config.labels_to_use))].reset_index(drop=True)


def _sets(table: pd.DataFrame, config: TrainConfig) -> np.ndarray:
    return D.assign_sets(table, validation_percentage=config.validate_percentage,
                         validation_offset_percentage=config.validation_offset_percentage,
                         testing_percentage=config.testing_percentage, validation_files=config.validation_files,
                         testing_files=config.testing_files)


def _check_every_label(table: pd.DataFrame, sets: np.ndarray, config: TrainConfig, what: str, fix: str) -> None:
    """Refuse a trial whose training or validation set lacks a label, or whose training set is
    smaller than a mini-batch."""
    for which in (D.TRAINING, D.VALIDATION):
        present = set(table["root_label"][sets == which])
        missing = [label for label in config.labels_to_use if label not in present]
        if missing:
            raise StudyError(f"{what}: its {which} set has no annotations of {missing}. {fix}")
    ntrain = int(np.sum(sets == D.TRAINING))
    if ntrain < config.mini_batch:
        raise StudyError(f"{what}: only {ntrain} training annotation(s), fewer than a mini-batch of {config.mini_batch}. "
                         f"Lower the mini-batch (--mini-batch) to at most {ntrain}, or {fix[0].lower()}{fix[1:]}")


# ---------------------------------------------------------------------------------------------
# the kinds of study


def xvalidate(ground_truth, base: TrainConfig, folds: int) -> list[Trial]:
    """k-fold cross-validation on SongExplorer's stable split (see the module docstring).

    Raises:
        StudyError: |folds| < 2, more folds than annotations, or a fold whose training or
            validation set lacks a label (naming the fold, the labels and the fix).
    """
    k = int(folds)
    if abs(k) < 2 or k != folds:
        raise StudyError(f"folds must be a whole number with |k| >= 2 (k folds validate on 1/k each; -k trains on "
                         f"1/k), not {folds!r}")
    if base.testing_percentage or base.validation_files or base.testing_files:
        raise StudyError("x-validation splits every annotation into folds: leave testing_percentage, "
                         "validation_files and testing_files at their defaults")
    table = _annotations(ground_truth, base)
    if abs(k) > len(table):
        raise StudyError(f"{abs(k)} folds but only {len(table)} annotation(s) of {list(base.labels_to_use)}: use at "
                         f"most {len(table)} folds (--folds), or annotate more")
    width = 100.0 / abs(k)
    trials = []
    for i in range(abs(k)):
        config = replace(base, validate_percentage=width if k > 0 else -width,
                         validation_offset_percentage=i * width)
        name = f"xvalidate_{i + 1}k" if k > 0 else f"xvalidate_{i + 1}k_train"
        _check_every_label(table, _sets(table, config), config, f"fold {i + 1} of {k}",
                           f"Use fewer folds (--folds {int(math.copysign(max(2, abs(k) - 1), k))} or less), or "
                           f"annotate more of those labels.")
        trials.append(Trial(name=name, config=config, varied={"fold": i + 1}))
    return trials


OMIT = ("one", "all-but-one")


def recordings_of(ground_truth, base: TrainConfig) -> list[str]:
    """The recordings (basenames) holding annotations a training with ``base`` uses, sorted.

    Raises:
        StudyError: two recordings in different folders share a basename (``validation_files``
            names recordings by basename).
    """
    table = _annotations(ground_truth, base)
    pairs = table[["wav", "recording"]].drop_duplicates()
    clashes = pairs["wav"][pairs["wav"].duplicated()].tolist()
    if clashes:
        raise StudyError(f"recordings {sorted(set(clashes))[:5]} appear in several folders; generalization withholds "
                         f"recordings by name: rename them so every recording's name is unique")
    return sorted(str(w) for w in pairs["wav"])


def generalize(ground_truth, base: TrainConfig, *, omit: str = "one", groups: int | None = None) -> list[Trial]:
    """Withhold whole recordings (see the module docstring). ``groups`` overrides ``omit``.

    Raises:
        StudyError: fewer than two recordings, more groups than recordings, or a trial whose
            training or validation set lacks a label.
    """
    if omit not in OMIT:
        raise StudyError(f"omit must be one of {OMIT}, not {omit!r}")
    wavs = recordings_of(ground_truth, base)
    if len(wavs) < 2:
        raise StudyError(f"generalization needs annotations in at least two recordings; found {wavs}. "
                         f"Annotate another recording")
    if groups is not None:
        k = int(groups)
        if not 2 <= k <= len(wavs):
            raise StudyError(f"groups must be between 2 and the number of recordings ({len(wavs)}), not {groups!r}")
        withheld_sets = [tuple(wavs[j] for j in range(i, len(wavs), k)) for i in range(k)]
        names = [f"omit_group{i + 1}" for i in range(k)]
    elif omit == "one":
        withheld_sets = [(w,) for w in wavs]
        names = [f"omit_{w}" for w in wavs]
    else:
        withheld_sets = [tuple(x for x in wavs if x != w) for w in wavs]
        names = [f"only_{w}" for w in wavs]
    table = _annotations(ground_truth, base)
    trials = []
    for name, withheld in zip(names, withheld_sets):
        config = replace(base, validate_percentage=0.0, validation_offset_percentage=0.0, testing_percentage=0.0,
                         validation_files=withheld, testing_files=())
        _check_every_label(table, _sets(table, config), config, f"{name} (validating on {list(withheld)})",
                           "Annotate those labels in more recordings, or use groups of recordings (--groups K).")
        trials.append(Trial(name=_safe(name), config=config, varied={"withheld": ",".join(withheld)},
                            withheld=withheld))
    return trials


def replicates(base: TrainConfig, n: int) -> list[Trial]:
    """``n`` trainings with seeds ``seed + r - 1`` (``r`` = 1..n; a random seed stays random)."""
    if int(n) != n or n < 2:
        raise StudyError(f"replicates must be a whole number >= 2, not {n!r}")

    def seed(s, r):
        return None if s is None else int(s) + r - 1

    return [Trial(name=f"replicate_{r}", config=replace(base, batch_seed=seed(base.batch_seed, r),
                                                       weights_seed=seed(base.weights_seed, r), nreplicates=1),
                  varied={"replicate": r}) for r in range(1, int(n) + 1)]


def learning_curve(ground_truth, base: TrainConfig, fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.7, 1.0)
                   ) -> list[Trial]:
    """Trainings on growing fractions of the training annotations (validation unchanged).

    Raises:
        StudyError: a fraction outside (0, 1], or one that leaves a label without training
            annotations or fewer annotations than a mini-batch.
    """
    fractions = sorted({float(f) for f in fractions})
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise StudyError(f"fractions must lie in (0, 1], e.g. 0.1,0.2,0.5,1; got {fractions}")
    table = _annotations(ground_truth, base)
    sets = _sets(table, base)
    trials = []
    for f in fractions:
        keep = kept_for_fraction(table, f) | (sets != D.TRAINING)
        name = f"fraction_{f:g}"
        _check_every_label(table[keep].reset_index(drop=True), sets[keep], base, name,
                           "Start the curve at a larger fraction, or annotate more of those labels.")
        trials.append(Trial(name=name, config=base, varied={"fraction": f}, fraction=f))
    return trials


def kept_for_fraction(table: pd.DataFrame, fraction: float) -> np.ndarray:
    """Rows a learning-curve trial at ``fraction`` keeps for training: a SHA-1 of the row's
    ``wav + start + stop`` (salted, so independent of the validation hash) below ``fraction``.
    The kept sets are nested: what 10 % keeps, 20 % keeps too."""
    out = []
    for wav, start, stop in zip(table["wav"], table["start"], table["stop"]):
        digest = hashlib.sha1(f"learning-curve:{wav}{int(start)}{int(stop)}".encode()).hexdigest()
        out.append(int(digest[:12], 16) / 16**12 < fraction)
    return np.asarray(out, dtype=bool)


def subset_for_fraction(ground_truth, config: TrainConfig, fraction: float) -> D.GroundTruth:
    """The ground truth of a learning-curve trial: validation and testing annotations all kept,
    training annotations only those :func:`kept_for_fraction` keeps."""
    truth = D.as_ground_truth(ground_truth, kinds=config.kinds_to_use)
    table = truth.intervals
    sets = _sets(table, config)
    keep = kept_for_fraction(table, fraction) | (sets != D.TRAINING)
    return D.GroundTruth(intervals=table[keep].reset_index(drop=True), recordings=truth.recordings, root=truth.root)


# ---------------------------------------------------------------------------------------------
# sweeps


def known_parameters() -> list[str]:
    """Every name :func:`sweep` accepts: TrainConfig settings, ``model.<ModelSpec field>`` and
    ``augmentation.<field>`` (model fields may be given without ``model.``)."""
    top = [f.name for f in fields(TrainConfig) if f.name not in ("labels_to_use", "model", "augmentation")]
    model = [f"model.{f.name}" for f in fields(M.ModelSpec)]
    augmentation = [f"augmentation.{f.name}" for f in fields(D.Augmentation)]
    return sorted(top) + sorted(model) + sorted(augmentation)


def _canonical(name: str) -> str:
    known = known_parameters()
    if name in known:
        return name
    if f"model.{name}" in known:
        return f"model.{name}"
    raise StudyError(f"unknown parameter {name!r} to vary; known: {', '.join(known)}")


def parse_value(text: str):
    """A sweep value from the command line: a JSON number/bool/null, else the string itself
    (``5x5,3`` kernel sizes and the like stay strings; the config parses them)."""
    if not isinstance(text, str):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def parse_vary(items: Iterable[str]) -> dict[str, list]:
    """``["learning_rate=0.001,0.01", "kernel_sizes=5x5,3;3x3,3"]`` -> ``{name: [values]}``.
    Values are separated by ``,``, or by ``;`` when a value itself holds commas."""
    out: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise StudyError(f"--vary takes NAME=V1,V2 (e.g. learning_rate=0.001,0.01), not {item!r}")
        name, values = item.split("=", 1)
        sep = ";" if ";" in values else ","
        parsed = [parse_value(v.strip()) for v in values.split(sep) if v.strip()]
        if not parsed:
            raise StudyError(f"--vary {name}: give at least one value")
        out[name.strip()] = parsed
    return out


def with_setting(config: TrainConfig, name: str, value) -> TrainConfig:
    """``config`` with one (canonical) parameter replaced; bad values raise ``TrainError``."""
    values = config.to_dict()
    if "." in name:
        group, key = name.split(".", 1)
        values[group] = {**values[group], key: value}
    else:
        values[name] = value
    return TrainConfig.from_dict(values)


def sweep(base: TrainConfig, vary: Mapping[str, Sequence]) -> list[Trial]:
    """Every combination of ``vary``'s values (the grid, in the order given).

    Raises:
        StudyError: an unknown parameter (listing the known ones), an empty list of values, or a
            value the config refuses (naming the parameter and the value).
    """
    if not vary:
        raise StudyError("a sweep needs at least one parameter to vary (--vary NAME=V1,V2)")
    names = [_canonical(n) for n in vary]
    grids = [list(v) for v in vary.values()]
    for name, values in zip(names, grids):
        if not values:
            raise StudyError(f"no values given for {name}")
    trials = []
    for combination in itertools.product(*grids):
        config = base
        for name, value in zip(names, combination):
            try:
                config = with_setting(config, name, value)
            except (ValueError, TypeError) as error:
                raise StudyError(f"{name}={value!r} is not a valid setting: {error}") from error
        varied = dict(zip(names, combination))
        trials.append(Trial(name=_safe("_".join(f"{n.removeprefix('model.')}-{v}" for n, v in varied.items())),
                            config=config, varied=varied))
    return trials


def compose(outer: Sequence[Trial], inner) -> list[Trial]:
    """Each trial of ``outer`` crossed with the study ``inner(config)`` builds from its config,
    e.g. ``compose(sweep(base, vary), lambda c: xvalidate(truth, c, 3))``: a sweep of 3-fold
    x-validations. Names join with ``__``, ``varied`` dicts merge."""
    trials = []
    for o in outer:
        for i in inner(o.config):
            trials.append(Trial(name=f"{o.name}__{i.name}", config=i.config, varied={**o.varied, **i.varied},
                                fraction=i.fraction if i.fraction is not None else o.fraction,
                                withheld=i.withheld or o.withheld))
    return trials


def _safe(name: str) -> str:
    """A folder name: characters other than letters, digits, ``. _ - = ,`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._=,-]+", "_", name)
