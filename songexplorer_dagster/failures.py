"""Steps fail with the same one-line message the command line prints (``songexplorer_core.errors``).

:func:`fails_clearly` wraps an asset's function: an expected failure (bad input or settings, a
file missing, corrupt or in the way, a full disk, a read-only folder, a busy output folder)
becomes ``dagster.Failure`` whose description is that line, so the run's page says what is wrong
and where instead of a traceback; a bug is raised as it is (Dagster shows its traceback).
"""

import functools

import dagster as dg

from songexplorer_core.errors import explain, is_expected


def fails_clearly(function):
    """Decorate an asset's function (below ``@dg.asset``) so expected failures are ``dg.Failure``."""

    @functools.wraps(function)
    def step(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except dg.Failure:
            raise
        except Exception as error:  # noqa: BLE001 (sorted by is_expected)
            if not is_expected(error):
                raise
            raise dg.Failure(description=explain(error),
                             metadata={"error": dg.MetadataValue.text(type(error).__name__)}) from error

    return step
