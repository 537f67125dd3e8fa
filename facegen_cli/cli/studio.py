"""`facegen studio`: a local web app to explore, mix, edit, morph and project faces, and a real-or-generated quiz."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from facegen_cli.cli.common import console, device_option, emit, network_option
from facegen_cli.errors import FacegenError

if TYPE_CHECKING:
    from facegen_cli.networks import Network

INSTALL_HINT = "facegen studio needs its web extra: pip install 'facegen-cli[studio]'"


def studio(
    network: Optional[str] = network_option,
    data: Optional[Path] = typer.Option(None, "--data", help="Real faces for the quiz: a folder or dataset zip."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    port: int = typer.Option(8000, "--port", "-p", help="Port to listen on; 0 picks a free one."),
    state: Optional[Path] = typer.Option(None, "--state", help="Folder that keeps each tab's faces across restarts "
                                         "(default: the user cache, a folder per network)."),
    device: str = device_option,
) -> None:
    """Serve the studio in the browser (prints its URL; Ctrl-C stops it)."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise FacegenError(INSTALL_HINT) from None
    from facegen_cli.studio.server import run_studio

    def ready(url: str, net: Network) -> None:
        emit(url)
        console.print(f"facegen studio: serving {net.path or net.arch} at {url} (Ctrl-C stops it)")

    run_studio(network, ready, data=data, host=host, port=port, state=state, device=device)
