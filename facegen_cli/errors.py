"""Errors the engine raises for the CLI to report as one line and an exit code."""
from __future__ import annotations

import re
from collections.abc import Mapping

# DataLoader re-raises a worker's exception as `type(e)(text)`, the text holding the worker's traceback.
_WORKER_PREFIX = re.compile(r"Caught \w+ in DataLoader worker process \d+\.")


class FacegenError(Exception):
    """A failure the user can act on; the CLI prints it as one line and exits 1."""

    exit_code = 1

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if _WORKER_PREFIX.match(text):  # keep the worker's own message, not its traceback
            last = text.rstrip().splitlines()[-1]
            text = last.split(": ", 1)[1] if ": " in last else last
        super().__init__(text)


class BadInput(FacegenError):
    """Malformed user input (an option value, a seed range, a missing input path); the CLI exits 2."""

    exit_code = 2


class BadParameter(BadInput):
    """A bad value of one parameter of an engine function, its message starting with the parameter's name
    (`psi 3.0 is outside [-2, 2]`); the CLI names its own option in its place (`--psi 3.0 ...`)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param

    def naming(self, option: str) -> str:
        """The message with the parameter's name replaced by `option`."""
        text = str(self)
        return option + text[len(self.param):] if text.startswith(self.param) else f"{option}: {text}"


Bounds = dict[str, tuple[float, float, bool]]  # parameter -> (low, high, whether low itself is allowed)


def check_bounds(values: object, bounds: Bounds) -> None:
    """Refuse the first attribute of `values` (or item, of a mapping) named in `bounds` that lies outside its range
    (NaN and infinities included); None is a value not given. Whole-number bounds are shown whole."""
    for name, (low, high, low_allowed) in bounds.items():
        value = values.get(name) if isinstance(values, Mapping) else getattr(values, name)
        if value is None or low < value <= high or (low_allowed and value == low):
            continue
        low_text, high_text = (str(b) if isinstance(b, int) else format(b, "g") for b in (low, high))
        shown = f"{low_text}-{high_text}" if low_allowed else f"({low_text}, {high_text}]"
        raise BadParameter(name, f"{name} {value if isinstance(value, int) else format(value, 'g')} is outside "
                                 f"{shown}")


class ParameterWarning(UserWarning):
    """A legal but odd value of one parameter (`strength 30 is beyond 10 ...`), raised with `warnings.warn`;
    the CLI shows it as one stderr line with its own option in the parameter's place."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param

    naming = BadParameter.naming


def torch_load_reason(error: BaseException) -> str:
    """One line saying why `torch.load(weights_only=True)` refused a file, without torch's advice to
    turn `weights_only` off."""
    text = str(error)
    glob = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if glob:
        return f"refuses to load the Python object {glob.group(1)} (only tensors and plain data are read)"
    detail = text.split("WeightsUnpickler error:", 1)
    if len(detail) == 2:
        reason = next((line.strip() for line in detail[1].splitlines() if line.strip()), "")
        return f"not a plain torch.save file of tensors ({reason.rstrip('.') or 'refused by the safe unpickler'})"
    # Anything else is torch tripping over the bytes ("internal miniz error", a negative seek, a bad record).
    return "not a valid or complete torch checkpoint (damaged or cut short)"
