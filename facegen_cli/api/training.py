"""Training: a generative network (planned, then run), the attribute classifier, and a network's encoder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from facegen_cli.api.draw import open_network
from facegen_cli.errors import BadParameter
from facegen_cli.networks import Network
from facegen_cli.train.options import TrainOptions

@dataclass(frozen=True)
class Trained:
    """A run's options as resolved against the data and what it starts from, and every file it wrote (its last
    checkpoint last; none on a dry run)."""

    options: TrainOptions
    written: list[Path]


def train(options: TrainOptions, resume: str | None = None, dry_run: bool = False,
          log: Callable[[str], None] = print, on_step: Callable[[dict, float], None] | None = None) -> Trained:
    """Plan a run (every option checked against the data and the run or network it starts from; `resume` a run
    folder, a checkpoint or `latest`) and, unless `dry_run`, train it with snapshots until its kimg or minutes.
    `log(line)` for what the run says, `on_step(stats, total_kimg)` after each step."""
    from facegen_cli.train.loop import Trainer
    from facegen_cli.train.plan import plan_training

    plan = plan_training(options, resume, log)
    if dry_run:
        return Trained(plan.opts, [])
    trainer = Trainer(plan, log=log)
    last = trainer.run(on_step=(lambda stats: on_step(stats, trainer.opts.kimg)) if on_step else None)
    return Trained(trainer.opts, [] if last is None else [p for p in trainer.written if p != last] + [last])


MIN_CLASSIFIER_SIZE = 16  # input side: the network halves it four times
MAX_CLASSIFIER_EPOCHS = 10_000  # passes over the data: thousands of times what a classifier needs to converge
HOLDOUT = (0.01, 0.9)  # fractions of a data set kept out to measure a classifier


def train_classifier(dataset: str | Path, out: str | Path, attrs: Sequence[str] | None = None, size: int = 64,
                     epochs: int = 5, batch: int = 64, lr: float = 2e-3, holdout: float = 0.1, seed: int = 0,
                     balance: float = 0.0, on_epoch: Callable[[int, float], None] | None = None,
                     on_note: Callable[[str], None] | None = None) -> dict:
    """A small CNN trained on a labelled data set (`prepare --labels`) for its `attrs` (default all) at `size` px,
    saved to `out`; returns the report (path, held-out accuracy or mean error per attribute). `balance` (0-1) evens
    out how often the values of the one numeric attribute (age) are drawn. `on_epoch(epoch, loss)` after each
    epoch, `on_note(text)` for labels read another way than written."""
    from facegen_cli.classifier import train_classifier as run

    for name, value, low in (("size", size, MIN_CLASSIFIER_SIZE), ("epochs", epochs, 1), ("batch", batch, 2)):
        if value < low:
            raise BadParameter(name, f"{name} {value} is less than {low}")
    if epochs > MAX_CLASSIFIER_EPOCHS:
        raise BadParameter("epochs", f"epochs {epochs} is more than {MAX_CLASSIFIER_EPOCHS}")
    if not HOLDOUT[0] <= holdout <= HOLDOUT[1]:
        raise BadParameter("holdout", f"holdout {holdout:g} is outside {HOLDOUT[0]:g}-{HOLDOUT[1]:g}")
    return run(dataset, out, list(attrs) if attrs else None, size=size, epochs=epochs, batch=batch, lr=lr,
               holdout=holdout, seed=seed, balance=balance, on_epoch=on_epoch, on_note=on_note)


def train_encoder(network: Network | str | None = None, out: str | Path | None = None, data: str | Path | None = None,
                  resume: str | Path | None = None, start_from: str | Path | None = None,
                  kimg: float = 100.0, minutes: float | None = None,
                  batch: int = 8, lr: float = 1e-3, perceptual_weight: float = 1.0, seed: int = 0,
                  precision: str = "fp32", device: str = "auto",
                  on_step: Callable[[dict], None] | None = None) -> tuple[Path, dict]:
    """Train (or go on training, from `resume`; or from `start_from`'s weights, an encoder of another network of the
    same sizes) an encoder for a network on its own samples and, with `data`, real faces, until `kimg` thousand
    images or `minutes`; returns the file and its training record.
    `on_step(stats)` after each step (kimg, steps, losses)."""
    from facegen_cli.encoder.train import EncoderTrainOptions, train_encoder as run

    opts = EncoderTrainOptions(kimg=kimg, minutes=minutes, batch=batch, lr=lr, perceptual_weight=perceptual_weight,
                               seed=seed, precision=precision)
    return run(open_network(network, device), out, opts, data=data, resume=resume, on_step=on_step,
               start_from=start_from)
