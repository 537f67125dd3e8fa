"""Run `facegen` invocations in a child process, each with a time limit, and say how each ended.

The child imports the CLI once and runs the cases one after another in process (Typer's CliRunner), so
hundreds of cases cost one start-up; a case that hangs (a FIFO opened for reading, /dev/zero read to the
end) is caught by the parent's time limit, which ends that child and starts a fresh one for the rest.
`python tests/cli_cases.py --serve` is the child: a case per stdin line (JSON), a result per stdout line.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

READY = "ready"
START_TIMEOUT_S = 300  # importing torch on a shared, loaded machine


@dataclass
class Case:
    """One invocation and what the README promises for it: exit 2 (bad usage), 1 (failure), "err" (1 or 2),
    "warn" (exit 0 and a `facegen: warning:` line), or "any" (only: no traceback, no hang)."""

    name: str
    args: list[str]
    expect: int | str = 2
    fragments: tuple[str, ...] = ()
    stdin: str | None = None


@dataclass
class Outcome:
    case: Case
    code: int | None = None  # None: it hung
    stdout: str = ""
    stderr: str = ""
    traceback: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def hung(self) -> bool:
        return self.code is None


def judge(outcome: Outcome) -> Outcome:
    """Fill `problems`: a hang, a traceback or internal error, exit 0 on invalid input, a wrong exit code,
    an error that is not one `facegen: error:` line, or a missing fragment."""
    case, errors = outcome.case, [line for line in outcome.stderr.splitlines() if line.startswith("facegen: error:")]
    if outcome.hung:
        outcome.problems.append("hang")
        return outcome
    if outcome.traceback or "Traceback" in outcome.stderr or any("internal error" in line for line in errors):
        outcome.problems.append("traceback")
    if case.expect in (1, 2, "err"):
        if outcome.code == 0:
            outcome.problems.append("exit 0")
        elif case.expect != "err" and outcome.code != case.expect:
            outcome.problems.append(f"exit {outcome.code}, not {case.expect}")
        if len(errors) != 1:
            outcome.problems.append("not one error line")
        missing = [f for f in case.fragments if not any(f in line for line in errors)]
        if errors and missing:
            outcome.problems.append(f"error line lacks {missing}")
    elif case.expect == "warn" and (outcome.code != 0 or "facegen: warning:" not in outcome.stderr):
        outcome.problems.append(f"exit {outcome.code} without a warning")
    return outcome


class _Child:
    """The serving process, started with one thread per library."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None):
        env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                     cwd=cwd, start_new_session=True)
        if self.read(START_TIMEOUT_S) != READY:
            self.end()
            raise RuntimeError("the case runner did not start")

    def read(self, timeout: float) -> str | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if ready else None

    def end(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)  # the child and any loader workers it started
        except ProcessLookupError:
            pass
        self.proc.wait()


def run_cases(cases: list[Case], timeout: float = 60.0, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> list[Outcome]:
    """Every case's outcome, judged; a case past `timeout` seconds counts as a hang. `env` adds to the child's
    environment."""
    outcomes, child = [], None
    try:
        for case in cases:
            child = child or _Child(cwd or Path.cwd(), env)
            began = time.perf_counter()
            child.proc.stdin.write(json.dumps({"args": case.args, "stdin": case.stdin}) + "\n")
            child.proc.stdin.flush()
            line = child.read(timeout)
            if not line:  # hung, or died without a word
                child.end()
                child = None
                outcomes.append(judge(Outcome(case, seconds=time.perf_counter() - began)))
                continue
            got = json.loads(line)
            outcomes.append(judge(Outcome(case, got["code"], got["stdout"], got["stderr"], got["traceback"],
                                          time.perf_counter() - began)))
    finally:
        if child is not None:
            child.end()
    return outcomes


def _serve() -> None:
    """The child's loop: run each case through the real app, answer with its exit code and output."""
    import traceback

    from typer.testing import CliRunner

    from facegen_cli.cli.main import app

    out = os.fdopen(os.dup(1), "w")  # the answers' own channel: whatever else writes to fd 1 goes to stderr
    os.dup2(2, 1)
    print(READY, file=out, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        result = CliRunner().invoke(app, request["args"], input=request["stdin"])
        escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
        stderr = result.stderr + ("".join(traceback.format_exception(result.exception)) if escaped else "")
        print(json.dumps({"code": result.exit_code, "stdout": result.stdout, "stderr": stderr,
                          "traceback": escaped}), file=out, flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
