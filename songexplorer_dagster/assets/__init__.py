"""Assets, one module per domain: ``recordings`` (the WAVs) and ``detections``."""
