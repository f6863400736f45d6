"""Resources: configurable handles on the outside world (the project folder)."""

from songexplorer_dagster.resources.project import ProjectResource

__all__ = ["ProjectResource"]
