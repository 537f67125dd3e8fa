"""Twenty clients on the studio for a minute (loopback only): it stays responsive and its memory flat."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from tiny_nets import tiny_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_twenty_clients_for_a_minute(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    net = tiny_checkpoint(tmp_path / "tiny.safetensors")
    done = subprocess.run([sys.executable, "-m", "benchmarks.studio_soak", "--network", str(net), "--clients", "20",
                           "--seconds", "60"], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["server_alive"] and result["failures"] == 0 and result["requests"] > 200
    assert result["probe_info"]["p95_ms"] < 1000  # a page still loads while every client waits for renders
    quarters = result["rss_mib"]["at_quarters"]
    assert quarters[3] - quarters[1] < 32, quarters  # flat over the second half: per-tab state is bounded
