"""Entry point for ``panel serve songexplorer_annotator/panel_app.py`` (the project comes from
``SONGEXPLORER_PROJECT``); ``songexplorer annotate`` is the usual way to start the annotator."""

import panel as pn

from songexplorer_annotator.app import create_app
from songexplorer_core.project import project_from_env

if pn.state.served:
    create_app(project_from_env().root).servable(title="SongExplorer annotator")
