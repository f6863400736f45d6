"""Small helpers that turn files and tables into Dagster metadata people can read in the UI."""

import base64
from pathlib import Path

import dagster as dg
import pandas as pd


def png_markdown(path: str | Path, title: str = "") -> dg.MetadataValue:
    """A PNG shown inline in the asset's metadata (markdown with a data URI)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"{('**' + title + '**' + chr(10) + chr(10)) if title else ''}"
                               f"![{title or Path(path).name}](data:image/png;base64,{data})")


def table_markdown(frame: pd.DataFrame, *, floatfmt: str = ".3f", max_rows: int = 50) -> dg.MetadataValue:
    """A table as markdown (the first ``max_rows`` rows)."""
    if not len(frame):
        return dg.MetadataValue.md("(empty)")
    text = frame.head(max_rows).to_markdown(index=False, floatfmt=floatfmt)
    if len(frame) > max_rows:
        text += f"\n\n... {len(frame) - max_rows} more rows"
    return dg.MetadataValue.md(text)
