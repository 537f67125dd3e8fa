"""The benchmark harness (fresh process per case, alternating rounds, medians, JSON), and every benchmark
script in its --quick form (slow: each starts Python processes that load torch and the models)."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import harness

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def spin(params: dict) -> harness.Work:
    """A case's work: busy-wait `seconds` per round (its build is importable by the case's process)."""
    def one_round() -> dict:
        end = time.perf_counter() + params["seconds"]
        while time.perf_counter() < end:
            pass
        return {"pid": os.getpid()}

    return harness.Work(one_round, info={"seconds": params["seconds"]}, units={"spins": 2})


def spin_cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    env = {"PYTHONPATH": str(TESTS)}
    return [harness.Case("short", {"seconds": 0.02}, group="g", rounds=3, env=env),
            harness.Case("long", {"seconds": 0.06}, group="g", rounds=3, env=env)]


def test_each_case_runs_in_its_own_process_in_alternating_rounds_with_medians(capsys):
    harness.main(harness.Benchmark(spin, spin_cases), ["--warmup", "1"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["case"] for r in records] == ["short", "long"]
    short, long = records
    # fresh processes, none of them this one
    assert short["pid"] != long["pid"] and os.getpid() not in (short["pid"], long["pid"])
    assert {r["pid"] for r in short["results"]} == {short["pid"]}
    # three timed rounds after the warm-up, alternating A B, B A, A B: the starts interleave that way
    assert short["rounds"] == long["rounds"] == 3
    starts = sorted((t, r["case"]) for r in records for t in r["started"])
    assert [case for _, case in starts] == ["long", "short", "short", "long", "long", "short"]
    assert harness.schedule(["a", "b", "c"], 4) == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"],
                                                    ["a", "b", "c"]]
    for r in records:
        assert r["median_wall_s"] == statistics.median(r["wall_s"])
        assert r["spins_per_s"] == pytest.approx(2 / r["median_wall_s"])
        assert r["median_wall_s"] >= r["params"]["seconds"]
    assert long["median_wall_s"] > short["median_wall_s"]
    assert 0.2 < long["vs_first"] < 0.7  # the first case's round over this one's, round by round
    assert short["info"] == {"seconds": 0.02}
    machine = short["machine"]
    assert machine["cores"] == os.cpu_count() and machine["cpu"] and machine["torch"]
    assert len(short["load"]["before"]) == 3 and short["peak_rss_mb"] > 0


def test_quick_is_one_round_and_out_writes_the_same_json_lines(tmp_path):
    out = tmp_path / "spin.jsonl"
    harness.main(harness.Benchmark(spin, spin_cases), ["--quick", "--out", str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["case"], r["rounds"]) for r in records] == [("short", 1), ("long", 1)]
    assert all(r["benchmark"] == "test_benchmarks" for r in records)


# Each script with --quick; a script's `quick_needs()` says what this machine lacks for it, if anything.
SCRIPTS = ["fid", "generate", "memory", "modconv", "ops", "precision", "layouts", "peer_nvidia", "train", "pose",
           "quiz_baseline", "latent_bounds", "identity_pairs", "precision_recall", "studio", "studio_soak", "equal_cpu",
           "encoder", "controls", "estimators", "tuning", "prepare", "detection", "train_flops", "train_profile",
           "face_check", "keep_edit", "age_spread"]


def test_every_script_has_its_quick_check_and_none_patches_sys_path():
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"__init__", "harness", "machine"}
    assert scripts == set(SCRIPTS)
    patched = [p.name for folder in ("benchmarks", "tools") for p in (ROOT / folder).glob("*.py")
               if "sys.path" in p.read_text()]
    assert not patched


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs_in_quick_form(script, tmp_path):
    missing = getattr(importlib.import_module(f"benchmarks.{script}"), "quick_needs", lambda: None)()
    if missing:
        pytest.skip(missing)
    out = tmp_path / f"{script}.jsonl"
    env = {**os.environ, "FACEGEN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{script}", "--quick", "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all("machine" in r for r in records)
    assert not [r for r in records if "failed" in r], records
