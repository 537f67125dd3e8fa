"""From people's photos to an aligned dataset: detect faces, find landmarks, align, label, write."""
from facegen_cli.prepare.pipeline import PrepareOptions, prepare

__all__ = ["PrepareOptions", "prepare"]
