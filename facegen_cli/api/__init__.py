"""facegen from Python: one function per command, typed parameters in, paths, numbers and records out.

Each takes the network as a loaded `Network` or as what `--network` takes (a path or a name; None: the
shipped model, loaded on `device`), and the drawing commands take how to draw it as one `SampleOptions`,
checked before any network loads. The `facegen` commands parse their options and call these; nothing here
prints, and long work reports through `on_progress(done, total)` (total None where it is not known ahead).

    from facegen_cli import api
    paths = api.mix([1], [2], "out/mix")
"""
from facegen_cli.api.directions import Fitted, directions_report, fit_direction, sefa
from facegen_cli.api.draw import (Layers, Progress, average, edit, generate, interpolate, kept_edit, mix, open_network,
                                  sampler, set_controls)
from facegen_cli.api.measure import Identity, convert, eqt, fid, identity, info
from facegen_cli.api.photos import PIVOT_STEPS, PROJECT_STEPS, Projected, prepare, project
from facegen_cli.api.training import Trained, train, train_classifier, train_encoder
from facegen_cli.sampler import SampleOptions

__all__ = ["Fitted", "Identity", "Layers", "PIVOT_STEPS", "PROJECT_STEPS", "Progress", "Projected", "SampleOptions",
           "average", "convert", "directions_report", "edit", "eqt", "fid", "fit_direction", "generate", "identity",
           "info", "interpolate", "kept_edit", "mix", "open_network", "prepare", "project", "sampler", "sefa",
           "set_controls", "Trained", "train", "train_classifier", "train_encoder"]
