"""What each control means (CONTROLS: the estimator that reads it, its unit and range) and the controls
fitted for one network, stored as `controls.json` beside its directions.

`controls.json` (format `facegen-controls`, version 1): the network id and, per control, the direction
(a `NAME.npy` + `NAME.json` pair in the same folder, read by latent.directions), the W+ layers it
moves, how many leading axes of the network's identity span (`identity-span.npy` in the same folder, read
by latent.identity_span) are projected out of it (`identity_free`, 0 when absent), and its measured slope:
how far one unit along the direction so freed moves the reading, in the units the search works in (years,
degrees, or the logit of a probability).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.fileio import write_text_atomic
from facegen_cli.latent.directions import Direction, load_direction, shipped_dir, store_dir
from facegen_cli.latent.identity_span import FILE as SPAN_FILE
from facegen_cli.latent.identity_span import read_identity_span
from facegen_cli.networks import Network

FORMAT = "facegen-controls"
VERSION = 1
FILE = "controls.json"
PROBABILITY_FLOOR = 1e-3  # probabilities are read as logits of p clipped to [floor, 1 - floor]


@dataclass(frozen=True)
class ControlSpec:
    """A control in general: which estimator reading it sets, in what unit, over what range, how close."""

    reader: str
    unit: str  # years | degrees | probability
    low: float
    high: float
    tolerance: float  # a reading this close to the target counts as met


CONTROLS: dict[str, ControlSpec] = {
    "Age": ControlSpec("Age", "years", 5, 90, 1.0),
    "Yaw": ControlSpec("Yaw", "degrees", -45, 45, 1.0),
    "Pitch": ControlSpec("Pitch", "degrees", -30, 30, 1.0),
    **{name: ControlSpec(name, "probability", 0, 1, 0.03)
       for name in ("Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Black_Hair", "Blond_Hair", "Brown_Hair",
                    "Gray_Hair")},
}


@dataclass
class Control:
    """One control fitted for a network."""

    name: str
    direction: str  # a direction's name in the same folder
    slope: float  # search units (years, degrees, logit) per unit along the direction (freed as below)
    layers: list[int] | None = None
    info: dict = field(default_factory=dict)
    identity_free: int = 0  # leading identity-span axes projected out of the direction

    @property
    def spec(self) -> ControlSpec:
        return CONTROLS[self.name]


def to_search(spec: ControlSpec, values: np.ndarray) -> np.ndarray:
    """Readings in the units the search steps in: logits for probabilities, else as read."""
    values = np.asarray(values, np.float64)
    if spec.unit != "probability":
        return values
    p = np.clip(values, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    return np.log(p / (1 - p))


def control_name(text: str) -> str:
    """The control's own spelling of `text` (any case); BadInput naming the known ones when there is none."""
    lower = {name.lower(): name for name in CONTROLS}
    if text.strip().lower() not in lower:
        raise BadInput(f"unknown control {text!r}; the controls are {', '.join(CONTROLS)}")
    return lower[text.strip().lower()]


def check_value(name: str, value: float, param: str = "targets") -> float:
    """`value` of control `name` within its range, else a BadParameter saying the range."""
    spec = CONTROLS[name]
    if not spec.low <= value <= spec.high:
        raise BadParameter(param, f"{param} {name}={value:g} is outside {spec.low:g}..{spec.high:g} {spec.unit}")
    return float(value)


def save_controls(controls: list[Control], network_id: str, folder: str | Path) -> Path:
    """Write `controls.json` under `folder` (the directions it names are saved beside it separately)."""
    path = Path(folder) / FILE
    body = {"format": FORMAT, "version": VERSION, "network_id": network_id,
            "controls": [asdict(c) for c in controls]}
    write_text_atomic(path, json.dumps(body, indent=1) + "\n")
    return path


def read_controls(path: str | Path) -> tuple[str, list[Control]]:
    """The network id and controls of a `controls.json`; FacegenError naming the file when it is not one."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
        if body.get("format") != FORMAT or body.get("version") != VERSION:
            raise ValueError(f"not {FORMAT} version {VERSION}")
        controls = [Control(**c) for c in body["controls"]]
        unknown = [c.name for c in controls if c.name not in CONTROLS]
        if unknown:
            raise ValueError(f"unknown control {unknown[0]!r}")
        for c in controls:
            if not isinstance(c.identity_free, int) or isinstance(c.identity_free, bool) or c.identity_free < 0:
                raise ValueError(f"control {c.name}: identity_free must be a whole number of axes, 0 or more")
        return body["network_id"], controls
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise FacegenError(f"{path}: unreadable controls file ({e})") from None


class FittedControl(NamedTuple):
    """A control fitted for a network: its record, the direction it moves along (freed of identity axes as the
    record says) and that direction as fitted."""

    control: Control
    direction: Direction
    as_fitted: Direction


def network_controls(net: Network) -> dict[str, FittedControl]:
    """Name -> the control fitted for `net`: the shipped file, then the user's store's over it."""
    found: dict[str, FittedControl] = {}
    for folder in (shipped_dir(net), store_dir(net)):
        path = folder / FILE
        if not path.exists():
            continue
        network_id, controls = read_controls(path)
        if network_id != net.network_id:
            raise FacegenError(f"{path}: controls of network {network_id}, not of this network ({net.network_id})")
        span = None
        if any(c.identity_free for c in controls):
            if not (folder / SPAN_FILE).exists():
                raise FacegenError(f"{path}: its controls free identity axes, but no {SPAN_FILE} is beside it")
            span = read_identity_span(folder / SPAN_FILE, net)
        for c in controls:
            direction = load_direction(str(folder / f"{c.direction}.npy"), net)
            if c.identity_free >= net.G_ema.w_dim:
                raise FacegenError(f"{path}: control {c.name} frees {c.identity_free} identity axes of "
                                   f"{net.G_ema.w_dim}; nothing would be left to move")
            found[c.name] = FittedControl(c, span.free_direction(direction, c.identity_free) if span else direction,
                                          direction)
    return found
