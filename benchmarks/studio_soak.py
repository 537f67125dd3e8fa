"""Studio soak: many clients, each its own tab, making requests for a while, on loopback only.

    python -m benchmarks.studio_soak [--network default] [--clients 20] [--seconds 60] [--quick]

Starts `facegen studio` in its own process. Each client opens seeds, pages the grid, drags an edit
slider and a mix, and lists its faces, in a loop; a probe asks for /api/info twice a second to see
that the server stays responsive, and the server's resident memory is sampled every second. Prints
one JSON object: requests and failures, latencies, the probe's latencies, and memory after the
first quarter of the run against the end (flat means per-tab state is bounded), with the machine and
its load. `--quick`: 2 clients for 8 seconds.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict

import numpy as np

from benchmarks import harness

RUN = [sys.executable, "-c", "from facegen_cli.cli.main import main; main()"]


def request(url: str, body: dict | None = None) -> tuple[int, float]:
    """(status, seconds) of one request; status 0 when the connection itself failed."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    except OSError:
        status = 0
    return status, time.perf_counter() - start


def open_face(base: str, seed: int) -> str | None:
    req = urllib.request.Request(f"{base}/faces", data=json.dumps({"seed": seed, "psi": 0.7}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return json.loads(response.read())["id"]
    except OSError:
        return None


def client(url: str, index: int, stop: threading.Event, log: dict, lock: threading.Lock) -> None:
    """One tab's loop of requests until `stop`."""
    base = f"{url}api/t/{index:032x}"
    rng = np.random.default_rng(index)
    faces = [f for f in (open_face(base, int(rng.integers(1 << 20))) for _ in range(2)) if f]
    seq = 0
    while not stop.is_set() and len(faces) >= 2:
        seq += 1
        kind = ("explore", "open", "edit", "edit", "mix", "faces")[seq % 6]
        if kind == "explore":
            status, took = request(f"{base}/explore?start={int(rng.integers(1 << 20))}&count=4&psi=0.7")
        elif kind == "open":
            start = time.perf_counter()
            face = open_face(base, int(rng.integers(1 << 20)))
            status, took = (200 if face else 0), time.perf_counter() - start
            faces = faces[-50:] + ([face] if face else [])
        elif kind == "edit":
            status, took = request(f"{base}/live/edit", {"op": "edit", "face": faces[-1], "seq": seq,
                                                          "sliders": {"sefa-00": float(rng.uniform(-3, 3))}})
        elif kind == "mix":
            status, took = request(f"{base}/live/mix", {"op": "mix", "a": faces[-1], "b": faces[-2], "seq": seq,
                                                         "layers": "0-3"})
        else:
            status, took = request(f"{base}/faces")
        with lock:
            log[kind].append(took)
            log["status"].append(status)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def summary(values: list[float]) -> dict:
    arr = np.asarray(values) * 1000
    return {"count": len(arr), "median_ms": round(float(np.median(arr)), 1),
            "p95_ms": round(float(np.percentile(arr, 95)), 1), "max_ms": round(float(arr.max()), 1)} if len(arr) else {}


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--network", default="default")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 2, 8
    load_before = harness.load_average()
    server = subprocess.Popen([*RUN, "studio", "--network", args.network, "--port", "0"], stdout=subprocess.PIPE,
                              text=True)
    try:
        url = server.stdout.readline().strip()
        if not url:
            raise SystemExit(f"the studio did not start (exit code {server.wait()})")
        log: dict[str, list] = defaultdict(list)
        lock, stop = threading.Lock(), threading.Event()
        threads = [threading.Thread(target=client, args=(url, i, stop, log, lock), daemon=True)
                   for i in range(args.clients)]
        for thread in threads:
            thread.start()
        start, memory, probe = time.perf_counter(), [], []
        while time.perf_counter() - start < args.seconds:
            status, took = request(f"{url}api/info")
            probe.append(took if status == 200 else float("inf"))
            memory.append((round(time.perf_counter() - start, 1), round(rss_mib(server.pid), 1)))
            time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        statuses = log.pop("status")
        quarter = [m for t, m in memory if t >= args.seconds / 4]
        result = {
            "network": args.network, "clients": args.clients, "seconds": args.seconds,
            "load": {"before": load_before, "after": harness.load_average()},
            "requests": len(statuses), "failures": sum(s not in (200, 204) for s in statuses),
            "stale_dropped": sum(s == 204 for s in statuses),
            "latency": {kind: summary(values) for kind, values in sorted(log.items())},
            "probe_info": summary(probe),
            "rss_mib": {"at_quarters": [next(m for t, m in memory if t >= args.seconds * q / 4) for q in range(1, 4)]
                        + [memory[-1][1]], "max": max(m for _, m in memory),
                        "growth_after_quarter": round(memory[-1][1] - quarter[0], 1)},
            "server_alive": server.poll() is None,
        }
        harness.write([{**result, "machine": harness.machine()}], args.out)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
