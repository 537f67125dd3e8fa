"""Edit page's controls: a face's age, head pose and expression set to values in their units (years, degrees,
probability) as `facegen edit --set Age=60` sets them: moved along the network's fitted controls until the
estimators read the targets on the image (controls.steer), the achieved reading shown beside the requested
one. Only the controls fitted for the network (shipped or in the user's store) appear."""
from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict

import numpy as np

from facegen_cli.controls.identity_hold import identity_axes
from facegen_cli.controls.steer import ControlResult, steer
from facegen_cli.controls.store import CONTROLS, network_controls
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.estimators.face import POSE, read_face
from facegen_cli.sampler import has_wplus
from facegen_cli.studio.service import Studio, data_url, field
from facegen_cli.studio.state import Face, Tab

log = logging.getLogger("facegen.studio")
STEPS = {"years": 1.0, "degrees": 1.0, "probability": 0.01}  # a slider's step in each unit
REMEMBERED = 32  # steered results kept, so that keeping or downloading what the page shows does not search again


class ControlPanel:
    """The controls fitted for the studio's network, a face's readings, and faces set to values."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.fitted = self._fitted()
        self.keeps_identity = bool(self.fitted) and self._has_identity_span()
        self.results: OrderedDict[tuple, ControlResult] = OrderedDict()
        studio.ops["controls"] = self.compose

    def _fitted(self) -> list[dict]:
        """Each fitted control as the page shows it: name, unit, range, step (CONTROLS' order)."""
        if not has_wplus(self.studio.net):
            return []
        try:
            found = network_controls(self.studio.net)
        except FacegenError as error:
            log.warning("no controls: %s", error)
            return []
        return [{"name": name, "unit": spec.unit, "low": spec.low, "high": spec.high, "step": STEPS[spec.unit]}
                for name, spec in CONTROLS.items() if name in found]

    def _has_identity_span(self) -> bool:
        """Whether a request may keep identity (the network has an identity span to hold it with)."""
        try:
            identity_axes(self.studio.net)
        except FacegenError:
            return False
        return True

    def reading(self, face: Face) -> dict[str, float | None]:
        """What the estimators read on the face's image, for each fitted control (None: nothing read)."""
        names = [c["name"] for c in self.fitted]
        if not names:
            raise BadInput("this network has no fitted controls")
        readers = [CONTROLS[name].reader for name in names]
        with self.studio.lock:
            image = self.studio.face_sampler(face).images(face.latent[None])
            values = read_face(image, pose=any(r in POSE for r in readers))
        read = {name: float(values[r][0]) for name, r in zip(names, readers)}
        return {name: v if math.isfinite(v) else None for name, v in read.items()}

    @staticmethod
    def request(tab: Tab, payload: dict) -> tuple[Face, dict[str, float], list[str]]:
        """The face, the targets (control -> value) and the names to keep of a request, typed; steer checks
        the names and ranges."""
        face = tab.face(field(payload, "face", str))
        targets = field(payload, "targets", dict)
        values = {name: field(targets, name, float) for name in targets}
        keep = field(payload, "keep", list, [])
        for name in keep:
            if not isinstance(name, str):
                raise BadInput(f"'keep' lists names of controls or directions, got {json.dumps(name)[:40]}")
        return face, values, keep

    def set(self, tab: Tab, payload: dict, seq: int | None) -> dict | None:
        """The face set to the request's targets: requested and achieved values, kept readings, identity
        distance and the image; None when a newer request of the tab has come in."""
        face, targets, keep = self.request(tab, payload)
        with self.studio.lock:
            if seq is not None and tab.is_stale("controls", seq):
                return None
            result = self.steered(tab, face, targets, keep)
        return {**result.summary(), "image": data_url(result.image)}

    def steered(self, tab: Tab, face: Face, targets: dict[str, float], keep: list[str]) -> ControlResult:
        """`steer`'s result for the face, the one remembered when the same request came before; under the
        studio's lock."""
        key = (tab.id, face.id, tuple(targets.items()), tuple(keep))
        result = self.results.get(key)
        if result is None:
            result = self.results[key] = steer(self.studio.face_sampler(face), face.latent, targets, keep)
        self.results.move_to_end(key)
        while len(self.results) > REMEMBERED:
            self.results.popitem(last=False)
        return result

    def compose(self, tab: Tab, payload: dict) -> tuple[Face, np.ndarray, str]:
        """A controls request as keep and the downloads take it: the face, its set latent, a name."""
        face, targets, keep = self.request(tab, payload)
        with self.studio.lock:
            result = self.steered(tab, face, targets, keep)
        return face, result.ws, f"{face.name}, " + ", ".join(f"{k} {v:g}" for k, v in result.requested.items())
