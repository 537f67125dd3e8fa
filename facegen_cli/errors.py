"""Errors the engine raises for the CLI to report as one line and an exit code."""


class FacegenError(Exception):
    """A failure the user can act on; the CLI prints it as one line and exits 1."""

    exit_code = 1


class BadInput(FacegenError):
    """Malformed user input (an option value, a seed range); the CLI exits 2."""

    exit_code = 2
