"""Finding directions: SeFa, InterFaceGAN boundaries from a classifier, and how every direction entangles."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from facegen_cli.api.draw import Layers, Progress, open_network
from facegen_cli.latent.layers import resolve_layers
from facegen_cli.networks import Network
from facegen_cli.sampler import Sampler, require_wplus


def sefa(network: Network | str | None = None, k: int = 10, layers: Layers | None = None,
         out: str | Path | None = None, device: str = "auto") -> list[Path]:
    """The top-k SeFa directions of a network's modulations (of `layers` only), saved to `out` (default the
    network's direction store, where `edit` finds them by name); returns every file written."""
    from facegen_cli.latent.directions import direction_files, run_sefa

    net = open_network(network, device)
    require_wplus(net, "SeFa")
    indices = None if layers is None else resolve_layers(net.G_ema, list(layers))
    return [written for path in run_sefa(net, out, k=k, layers=indices) for written in direction_files(path)]


@dataclass(frozen=True)
class Fitted:
    """A direction fitted by `fit_direction`: the files written and the boundary's held-out accuracy."""

    paths: list[Path]
    accuracy: float


def fit_direction(attr: str, classifier: str | Path, network: Network | str | None = None, samples: int = 2000,
                  ratio: float = 0.25, seed_start: int = 0, psi: float = 1.0, out: str | Path | None = None,
                  device: str = "auto", on_progress: Progress | None = None) -> Fitted:
    """InterFaceGAN: `samples` faces scored by the classifier's `attr`, a linear boundary fitted in W on the
    `ratio` highest and lowest, its normal saved as the direction `attr` (`directions fit`)."""
    from facegen_cli.latent.boundary import run_fit
    from facegen_cli.latent.directions import direction_files

    done = [0]

    def advance(count: int) -> None:
        done[0] += count
        if on_progress:
            on_progress(done[0], samples)

    path, accuracy = run_fit(open_network(network, device), attr, classifier, out, samples=samples, ratio=ratio,
                             seed_start=seed_start, psi=psi, on_batch=advance)
    return Fitted(direction_files(path), accuracy)


def directions_report(out: str | Path, network: Network | str | None = None, seeds: Sequence[int] = range(16),
                      step: float = 2.0, psi: float = 1.0, device: str = "auto",
                      on_progress: Progress | None = None, conditional: Sequence[str] = ()) -> dict:
    """The entanglement matrix of every direction of a network (how one unit along each moves every estimator,
    with the `conditional` directions projected out of each) with its heatmap written to `out` (`heatmap`)."""
    from facegen_cli.controls.entanglement import draw_heatmap, report

    done = iter(range(1, 1 << 30))
    result = report(Sampler(open_network(network, device), psi=psi), list(seeds), step,
                    on_direction=(lambda _: on_progress(next(done), None)) if on_progress else None,
                    conditional=conditional)
    result["heatmap"] = str(draw_heatmap(result, out))
    return result
