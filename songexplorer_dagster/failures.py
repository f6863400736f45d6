"""Steps fail with the same one-line message the command line prints (``songexplorer_core.errors``).

:func:`fails_clearly` wraps an asset's function: an expected failure (bad input or settings, a
file missing, corrupt or in the way, a full disk, a read-only folder, a busy output folder)
becomes ``dagster.Failure`` whose description is that line, so the run's page says what is wrong
and where instead of a traceback; a bug is raised as it is (Dagster shows its traceback).
"""

import functools
import inspect

import dagster as dg

from songexplorer_core.errors import explain, is_expected


def fails_clearly(function):
    """Decorate an asset's function (below ``@dg.asset``) so expected failures are ``dg.Failure``."""

    def clearly(error: Exception) -> dg.Failure:
        if isinstance(error, dg.Failure) or not is_expected(error):
            raise error
        return dg.Failure(description=explain(error), metadata={"error": dg.MetadataValue.text(type(error).__name__)})

    if inspect.isgeneratorfunction(function):  # a step yielding its results (songexplorer_dagster.batches)
        @functools.wraps(function)
        def steps(*args, **kwargs):
            try:
                yield from function(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 (sorted by is_expected)
                raise clearly(error) from error

        return steps

    @functools.wraps(function)
    def step(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 (sorted by is_expected)
            raise clearly(error) from error

    return step
