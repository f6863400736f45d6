"""Annotation formats of other tools, to and from SongExplorer's interval CSVs.

One module per format (:mod:`.raven`, :mod:`.audacity`, :mod:`.textgrid`, :mod:`.das`), each a
small reader and writer following the tool's published format; :mod:`.timing` holds the
seconds <-> tics rule (exact round trips), :mod:`.common` the conversion to and from the
project's interval table, :mod:`.registry` the formats by name and file suffix, and
:mod:`.files` what the command line and Dagster call: import a file, export a CSV, find the
files beside a recording. See docs/formats.md.
"""

from songexplorer_core.formats.common import Event, FormatError, Parsed
from songexplorer_core.formats.files import (
    export_csv,
    export_csvs,
    find_annotation_files,
    foreign_files_for_recording,
    import_file,
    name_info,
    read_annotation_file,
    render_table,
)
from songexplorer_core.formats.registry import FORMATS, Format, check_format_names, format_named, format_of_file
from songexplorer_core.formats.timing import decimals_for, parse_seconds, seconds_text, tic_of

__all__ = [
    "FORMATS", "Event", "Format", "FormatError", "Parsed", "check_format_names", "decimals_for", "export_csv",
    "export_csvs", "find_annotation_files", "foreign_files_for_recording", "format_named", "format_of_file",
    "import_file", "name_info", "parse_seconds", "read_annotation_file", "render_table", "seconds_text", "tic_of",
]
