"""Small helpers that turn files and tables into Dagster metadata people can read in the UI.

What Dagster 1.13's asset and partition pages show in place (its ``MetadataEntry`` component):
markdown under 1000 characters, tables (``MetadataValue.table``), text, numbers, URLs and paths.
Longer markdown (a PNG embedded as data) hides behind "[Show Markdown]"; float and int values are
also plotted over time, so constants go in as text. Hence plots are markdown images *by address*
when ``songexplorer plots`` serves them (``SONGEXPLORER_PLOTS_URL``, ``songexplorer_core.links``),
embedded only when it does not.
"""

import base64
from pathlib import Path

import dagster as dg
import pandas as pd

from songexplorer_core.links import annotator_url, place_of_interest, plot_url

#: Dagster shows markdown in place only below this many characters.
INLINE_MARKDOWN_CHARS = 1000


def png_markdown(path: str | Path, title: str = "", outputs: str | Path | None = None) -> dg.MetadataValue:
    """A PNG for the asset's metadata: shown in place, by address, when ``path`` is under
    ``outputs`` (the project's ``outputs/``) and a plots server is named; else embedded as a data
    URI (complete, but behind "[Show Markdown]")."""
    heading = f"**{title}**\n\n" if title else ""
    url = plot_url(outputs, path) if outputs is not None else None
    if url is not None and len(heading) + len(url) + len(title) + 8 < INLINE_MARKDOWN_CHARS:
        return dg.MetadataValue.md(f"{heading}![{title or Path(path).name}]({url})")
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"{heading}![{title or Path(path).name}](data:image/png;base64,{data})")


def table_markdown(frame: pd.DataFrame, *, floatfmt: str = ".3f", max_rows: int = 50) -> dg.MetadataValue:
    """A table as markdown (the first ``max_rows`` rows)."""
    if not len(frame):
        return dg.MetadataValue.md("(empty)")
    text = frame.head(max_rows).to_markdown(index=False, floatfmt=floatfmt)
    if len(frame) > max_rows:
        text += f"\n\n... {len(frame) - max_rows} more rows"
    return dg.MetadataValue.md(text)


def _cell(value):
    if isinstance(value, float):
        return round(value, 4)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value if isinstance(value, (int, str, bool)) or value is None else str(value)


def table_value(frame: pd.DataFrame, *, max_rows: int = 50) -> dg.MetadataValue:
    """A table Dagster shows in place at any length (``MetadataValue.table``), the first
    ``max_rows`` rows, floats to 4 decimals."""
    shown = frame.head(max_rows)
    columns = [dg.TableColumn(str(c), "float" if pd.api.types.is_float_dtype(shown[c]) else
                              "int" if pd.api.types.is_integer_dtype(shown[c]) else "string") for c in shown.columns]
    records = [dg.TableRecord({str(c): _cell(v) for c, v in zip(shown.columns, row)})
               for row in shown.itertuples(index=False)]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def intervals_preview(frame: pd.DataFrame, rate: int, *, max_rows: int) -> dg.MetadataValue:
    """The first ``max_rows`` intervals with times in seconds first (``start_s``, ``stop_s``: the
    first and last tic's time; ``duration_s``: ``(stop - start + 1) / rate``), then label and kind, then the tics (``start``, ``stop``, inclusive) as extra
    columns; shown in place."""
    shown = frame.head(max_rows)
    seconds = pd.DataFrame({
        "start_s": shown["start"].to_numpy() / rate,
        "stop_s": shown["stop"].to_numpy() / rate,
        "duration_s": (shown["stop"].to_numpy() - shown["start"].to_numpy() + 1) / rate,
    })
    rest = [c for c in ("label", "kind") if c in shown.columns]  # the page names the recording and ratio
    table = pd.concat([seconds, shown[rest].reset_index(drop=True),
                       shown[["start", "stop"]].reset_index(drop=True).rename(
                           columns={"start": "start_tic", "stop": "stop_tic"})], axis=1)
    return table_value(table, max_rows=max_rows)


def annotator_link(key: str, starts_tics, rate: int, what: str) -> dict[str, dg.MetadataValue]:
    """``open_in_annotator``: the recording ``key`` in the annotator, its window opening a second
    before the first of ``starts_tics`` (tics; ``what`` they are, said in ``annotator_opens_at``),
    or at the recording's start when there is none (``songexplorer_core.links``)."""
    starts = [int(s) for s in starts_tics]
    start_s = place_of_interest(starts, rate)
    where = f"{what} at {min(starts) / rate:.2f} s" if starts else "the start (nothing to point at)"
    return {"open_in_annotator": dg.MetadataValue.url(annotator_url(key, start_s or 0.0)),
            "annotator_opens_at": dg.MetadataValue.text(where)}
