"""How probabilities become ethograms, as a Dagster resource.

One setting, shared by the ``ethograms`` asset and the promotion gate (which scores a new model's
ethogram on the dense recordings), so the champion is judged on the ethograms people get.
"""

from typing import Literal

import dagster as dg
from pydantic import Field


class EthogramResource(dg.ConfigurableResource):
    """The ethogram method (``songexplorer_core.ethogram``)."""

    method: Literal["auto", "maxprob", "threshold"] = Field(
        default="auto",
        description=("'auto' (default): each tic gets its most probable label for exclusive models, per-label "
                     "thresholds for overlapped ones; 'maxprob'; or 'threshold' (SongExplorer's default: the "
                     "model's thresholds at each precision/recall ratio). Why auto: docs/recipe.md."),
    )
    min_segment_fraction: float = Field(
        default=0.5, ge=0.0,
        description=("Predicted intervals of a label annotated only with ranges (sine, syllables) shorter than this "
                     "fraction of its shortest annotated range are dropped; 0 keeps them all (SongExplorer)."),
    )
