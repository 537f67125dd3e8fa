"""Every stats line of a run records its cumulative CPU seconds (`cpu_s`), counted on across resumes, children
(data-loading workers) included."""
from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facegen_cli.train.cputime import CpuClock
from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import TrainOptions
from real_faces import celeba_folder

REPO = Path(__file__).parents[1]
TINY = dict(cbase=512, cmax=64, z_dim=64, w_dim=64, map=2, batch=4, workers=0, device="cpu", snap=0.008, seed=3)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return celeba_folder(tmp_path_factory.mktemp("data") / "faces", 16)


def train(data: Path, out: Path, kimg: float, resume: Path | None = None, log=None) -> Trainer:
    trainer = Trainer(TrainOptions(data=str(data), out=str(out), kimg=kimg, **TINY), resume=resume,
                      log=log or (lambda msg: None))
    trainer.run()
    return trainer


def stats(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def test_cpu_seconds_grow_with_each_snapshot_and_a_resume_counts_on(faces, tmp_path):
    first = train(faces, tmp_path, 0.016)
    before = stats(first.run_dir)
    assert [line["kimg"] for line in before] == [0.008, 0.016]
    assert 0 < before[0]["cpu_s"] < before[1]["cpu_s"]
    said = []
    started = time.process_time()
    resumed = train(faces, tmp_path, 0.024, resume=first.run_dir, log=said.append)
    used = time.process_time() - started
    after = stats(resumed.run_dir)
    assert after[:2] == before and after[2]["kimg"] == 0.024
    # on from the previous value, by what the resumed run itself used (the lines are rounded to 0.1 s)
    assert 0 < after[2]["cpu_s"] - before[1]["cpu_s"] <= used + 0.2
    assert not any("records no cpu_s" in line for line in said)


def test_a_run_whose_stats_lack_cpu_seconds_counts_from_zero_and_says_so(faces, tmp_path):
    first = train(faces, tmp_path, 0.008)
    path = first.run_dir / "stats.jsonl"
    old = [{k: v for k, v in line.items() if k != "cpu_s"} for line in stats(first.run_dir)]
    path.write_text("".join(json.dumps(line) + "\n" for line in old))
    said = []
    started = time.process_time()
    train(faces, tmp_path, 0.016, resume=first.run_dir, log=said.append)
    used = time.process_time() - started
    assert any("records no cpu_s up to 0.008 kimg" in line and "counts from 0" in line for line in said)
    assert 0 < stats(first.run_dir)[-1]["cpu_s"] <= used + 0.2


def _burn(seconds: float, done, leave) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    done.set()
    leave.wait(30)


def test_the_clock_counts_a_child_while_it_runs_and_once_it_is_reaped():
    ctx = multiprocessing.get_context("fork")
    done, leave = ctx.Event(), ctx.Event()
    clock = CpuClock(start=100.0)
    child = ctx.Process(target=_burn, args=(0.6, done, leave))
    child.start()
    try:
        assert done.wait(30)
        running = clock.seconds() - 100.0
        assert running >= 0.5
    finally:
        leave.set()
        child.join(30)
    reaped = clock.seconds() - 100.0
    assert 0.5 <= reaped < running + 0.3  # counted once, not again when reaped


def test_the_heldout_tool_pairs_two_runs_snapshots_at_equal_cpu_time(tmp_path):
    # The shipped config resumed at 52 kimg before stats recorded cpu_s, restarted at 60 with it (counting from 0
    # there); a wider arm grown at 52 counts from 0 there. The known values place both on one CPU axis.
    def run(name: str, lines: list[dict]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for line in lines:
            line["snapshot"] = f"network-snapshot-{line['kimg']:010.3f}.safetensors"
        (folder / "stats.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        return folder

    main = run("main", [{"kimg": 48.0}, {"kimg": 52.032}, {"kimg": 56.0}, {"kimg": 60.0}, {"kimg": 64.0, "cpu_s": 500.0},
                        {"kimg": 68.0, "cpu_s": 1000.0}])
    wide = run("wide", [{"kimg": 52.032}, {"kimg": 56.0, "cpu_s": 1600.0}])
    known = tmp_path / "known.jsonl"
    known.write_text(json.dumps({"snapshot": "network-snapshot-000052.032.safetensors", "cpu_s": 0.0}) + "\n"
                     + json.dumps({"snapshot": "network-snapshot-000060.000.safetensors", "cpu_s": 1000.0}) + "\n")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "heldout.py"), "arms", str(main), str(wide),
                           "--known-cpu", str(known)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["cpu_s"] for row in rows] == [[0.0, 0.0], [1500.0, 1600.0]]
    assert [row["kimg"] for row in rows] == [[52.032, 52.032], [64.0, 56.0]]
    assert rows[1]["snapshot"] == [str(main / "network-snapshot-000064.000.safetensors"),
                                   str(wide / "network-snapshot-000056.000.safetensors")]
