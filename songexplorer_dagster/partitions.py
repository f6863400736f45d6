"""Partitions shared by assets, jobs and sensors.

Every recording in a project's ``groundtruth/`` folder is one partition of ``recordings_partitions``.
Its key is :func:`songexplorer_core.project.recording_key` of the recording's path relative to
``groundtruth/`` (``round1/PS.wav`` -> ``round1%2FPS.wav``): flat, reversible and stable, so
the same recording keeps the same partition (and the same output files) across runs. Partitions are
added at runtime by :mod:`songexplorer_dagster.sensors` as recordings appear.
"""

import dagster as dg

#: One partition per recording, keyed by ``songexplorer_core.project.recording_key``.
recordings_partitions = dg.DynamicPartitionsDefinition(name="recordings")
