"""Build the studio for a network and serve it with uvicorn, in the foreground (the CLI: Ctrl-C stops
it cleanly) or in a thread (tests, benchmarks, screenshots)."""
from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import uvicorn
from starlette.applications import Starlette

from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.fileio import check_writable
from facegen_cli.devices import resolve_device
from facegen_cli.networks import Network, load_network
from facegen_cli.paths import cache_dir
from facegen_cli.studio.app import create_app
from facegen_cli.studio.controls import ControlPanel
from facegen_cli.studio.projection import Projector
from facegen_cli.studio.quiz import QuizMaster
from facegen_cli.studio.service import Studio

LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def build_app(net: Network, data: Path | None = None, host: str = "127.0.0.1", state: Path | None = None) -> Starlette:
    """The studio's app for `net`, with real faces from `data` for the quiz; its files live in a fresh temp folder,
    the tabs' faces in `state` (default: the user cache, a folder per network), where a restart finds them."""
    if data is not None and not Path(data).exists():
        raise BadInput(f"--data {data}: no such folder or file")
    folder = Path(state) if state is not None else cache_dir("studio", net.network_id)
    check_writable(folder, folder=True, what="--state")
    studio = Studio(net, Path(tempfile.mkdtemp(prefix="facegen-studio-")), folder)
    try:
        quiz = QuizMaster(net, Path(data) if data else None, studio.lock)
    except FacegenError:
        studio.close()
        raise
    return create_app(studio, quiz, Projector(studio), ControlPanel(studio),
                      LOOPBACK_NAMES if is_loopback(host) else None)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> tuple[socket.socket, str]:
    """A listening socket on host:port (port 0: any free one) and the URL it serves."""
    if not 0 <= port <= 65535:
        raise BadInput(f"--port {port} is outside 0-65535")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except socket.gaierror:
        raise BadInput(f"--host {host}: not an address of this machine") from None
    except OSError as e:
        hint = "; try another --port" if e.errno == errno.EADDRINUSE else ""
        raise FacegenError(f"cannot listen on {host}:{port} ({e.strerror or e}){hint}") from None
    sock.listen(128)
    shown = f"[{host}]" if ":" in host else host
    return sock, f"http://{shown}:{sock.getsockname()[1]}/"


def run_studio(network: Network | str | None, on_ready: Callable[[str, Network], None], data: Path | None = None,
               host: str = "127.0.0.1", port: int = 8000, state: Path | None = None, device: str = "auto") -> None:
    """The studio for `network` (a Network, a name or path, None: the shipped model) on host:port: every
    input is checked before it listens, `on_ready(url, net)` once it does, then it serves until Ctrl-C."""
    net = network if isinstance(network, Network) else load_network(network, resolve_device(device))
    sock, url = bind(host, port)
    try:
        app = build_app(net, data, host, state)
    except BaseException:
        sock.close()
        raise
    on_ready(url, net)
    serve(app, sock)


def server_for(app: Starlette) -> uvicorn.Server:
    logging.getLogger("facegen.studio").setLevel(logging.INFO)
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve until Ctrl-C (or SIGTERM): uvicorn finishes open requests, then the studio removes its files."""
    try:
        server_for(app).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn passes on the Ctrl-C it has handled, once its graceful shutdown is done


@dataclass
class Running:
    """A studio served from a background thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Serve `app` from a daemon thread and return once it accepts requests."""
    sock, url = bind(host, port)
    server = server_for(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="studio-server")
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise FacegenError("the studio server did not start; see the log above")
        thread.join(timeout=0.05)
    return Running(url, server, thread)
