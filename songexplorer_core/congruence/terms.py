"""The names congruence uses (settings, keys, references) and its error."""

from __future__ import annotations

MEASURES = ("tic", "label")
PORTIONS = ("union", "intersection")
SPANS = ("annotations", "label")
ABSENT = ("empty", "skip")
#: Key of the model's predictions; SongExplorer's disjoint files call it "songex".
MODEL_KEY = "songex"
#: Reference of SongExplorer's own P/R definition in :attr:`Congruence.scores`.
SONGEXPLORER_REFERENCE = "songexplorer"
EVERYONE = "everyone"


class CongruenceError(ValueError):
    """Congruence cannot be computed from this input; the message names what is wrong and the fix."""
