"""The annotator: a Panel app where people see, hear and label song (``songexplorer annotate``).

See docs/annotator.md. The labelling state lives in
:mod:`songexplorer_core.annotation_session`; this package draws it and serves it.
"""
