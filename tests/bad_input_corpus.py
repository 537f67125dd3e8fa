"""A corpus of bad invocations over every command, each run with a time limit (tests/cli_cases.py).

Bad input paths in every input position (missing, a folder, a FIFO, /dev/zero, /dev/null, a socket, an
empty, garbage or text file, corrupt files of the kind the position reads, ''), unwritable outputs
(/proc, under a file, /dev/null, a FIFO) and bad numbers for every number option (NaN, inf, -inf, -1, 0,
1e308, a word, ''), then what a few commands take as words (edit's `--set` controls and `--keep`, the
studio's host, port and device). Each case says what the README promises for it (exit 2 bad usage, 1
failure, "err" either, "any" where the value is legal); the corpus counts tracebacks, hangs and exit 0 on
invalid input. Every command registered in the CLI has cases (the slow test checks it). No case may start
a server: the studio's cases all end before it would serve.

    OMP_NUM_THREADS=1 python tests/bad_input_corpus.py [--json FAILURES.json]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path
from unittest import mock

import numpy as np

from cli_cases import Case, Outcome, run_cases

PATH_KINDS = ("missing", "folder", "fifo", "zero", "null", "socket", "empty", "garbage", "text", "emptystr")
SPECIAL = {"missing", "fifo", "zero", "null", "socket"}  # promised: exit 2, the path named
# Corrupt files of the kind each input position reads, beside the generic kinds above.
CORRUPT = {
    "network": ("trunc.safetensors", "cut.pt", "garbage.pkl", "classifier.safetensors"),
    "latent": ("nan.npy", "str.npy", "shape.npy", "big.npy", "obj.npy"),
    "dataset": ("corrupt.zip", "fakepng", "mixed"),  # training needs every image readable and of one size
    "images": ("corrupt.zip", "fakepng"),  # FID resizes, so mixed sizes are fine
    "photos": (),  # prepare skips bad photos and goes on (README), so only the generic kinds are errors
    "photo": ("fake.jpg", "tiny.png"),
    "labels": ("header.csv", "words.csv"),
    "classifier": ("trunc.safetensors", "net.safetensors"),
    "direction": ("nanvec.npy", "nojson.npy"),
    "checkpoint": ("trunc.safetensors", "cut.pt"),
    "encoder": ("trunc.safetensors", "cut.pt", "net.safetensors"),  # a network is not an encoder
    "quiz": ("corrupt.zip",),  # the quiz skips unreadable images and resizes, so only an unreadable set fails
    "inception": ("cut.pt", "garbage.pkl"),
}
NUMBERS = ("nan", "inf", "-inf", "-1", "0", "1e308", "abc", "")
GROUPS = ("directions", "classifier", "encoder")  # commands with subcommands
ENCODER = "--kimg 0.004 --batch 2 --perceptual-weight 0"  # two steps of encoder training where a value is legal


def make_fixtures(d: Path) -> None:
    """Every file the cases point at, under `d`."""
    import torch
    from PIL import Image

    from facegen_cli.latent.directions import Direction, save_direction, store_dir
    from real_faces import CELEBA_IMAGES, celeba_faces
    from tiny_nets import tiny_checkpoint
    from facegen_cli.networks import load_checkpoint

    net = load_checkpoint(tiny_checkpoint(d / "net.safetensors"))
    network_id = net.network_id
    os.mkfifo(d / "fifo.jpg")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(d / "sock.npy"))
    (d / "folder").mkdir()
    (d / "empty.bin").write_bytes(b"")
    (d / "garbage.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "garbage.pkl").write_bytes(b"\x80\x04" + np.random.default_rng(1).bytes(4096))
    (d / "text.txt").write_text("hello world\n")
    (d / "file").write_text("x")
    data = (d / "net.safetensors").read_bytes()
    (d / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    torch.save({"g_ema": {"w": torch.randn(4096)}}, d / "whole.pt")
    (d / "cut.pt").write_bytes((d / "whole.pt").read_bytes()[:3000])
    (d / "classifier.safetensors").write_bytes((Path(__file__).parents[1] / "facegen_cli" / "weights" / "classifiers"
                                                / "celeba-attributes.safetensors").read_bytes())
    good = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    np.save(d / "good.npy", good)
    np.save(d / "nan.npy", np.where(good > 1, np.nan, good))
    np.save(d / "str.npy", np.array(["abc"] * 64))
    np.save(d / "shape.npy", good[:3])
    np.save(d / "big.npy", good.astype(np.float64) * 1e300)
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    save_direction(Direction("unit", np.eye(64, dtype=np.float32)[0], network_id), d / "dirs")
    with mock.patch.dict(os.environ, cache_env(d)):  # one direction in the network's store, for `directions report`
        save_direction(Direction("unit", np.eye(64, dtype=np.float32)[0], network_id), store_dir(net))
    save_direction(Direction("nanvec", np.full(64, np.nan, np.float32), network_id), d)
    np.save(d / "nojson.npy", np.eye(64, dtype=np.float32)[0])
    for folder in ("faces", "labelled", "fakepng", "mixed"):
        (d / folder).mkdir()
    names = []
    for i, face in enumerate(celeba_faces(12)):
        face.save(d / "faces" / f"{i:02d}.png")
        face.save(d / "labelled" / f"{i:02d}.png")
        names.append(f"{i:02d}.png")
    (d / "labelled" / "dataset.json").write_text(json.dumps({"labels": [[n, [i % 2]] for i, n in enumerate(names)],
                                                             "label_names": ["Smiling"]}))
    next(celeba_faces(1)).save(d / "fakepng" / "a.png")
    (d / "fakepng" / "b.png").write_text("a text file named .png\n")
    next(celeba_faces(1)).save(d / "mixed" / "a.png")
    next(celeba_faces(1, size=48)).save(d / "mixed" / "b.png")
    (d / "corrupt.zip").write_bytes(b"PK\x03\x04" + np.random.default_rng(2).bytes(2000))
    (d / "photos").mkdir()
    for name in ("000001.jpg", "000002.jpg"):
        (d / "photos" / name).write_bytes((CELEBA_IMAGES / name).read_bytes())
    (d / "fake.jpg").write_text("not a photo\n")
    Image.new("RGB", (4, 4)).save(d / "tiny.png")
    Image.new("RGB", (200, 200), "white").save(d / "white.png")
    (d / "header.csv").write_text("file,Smiling\n")
    (d / "words.csv").write_text("file,Smiling\n000001.jpg,yes\n")


def _path(d: Path, kind: str) -> str:
    return {"missing": f"{d}/nothere.npy", "folder": f"{d}/folder", "fifo": f"{d}/fifo.jpg", "zero": "/dev/zero",
            "null": "/dev/null", "socket": f"{d}/sock.npy", "empty": f"{d}/empty.bin", "garbage": f"{d}/garbage.bin",
            "text": f"{d}/text.txt", "emptystr": ""}.get(kind, f"{d}/{kind}")


# Every input position: (command template with {P}, the kind of file read there). {net} is a good network,
# {out} a fresh output folder per case.
INPUT_SLOTS = [
    ("generate -n {P} -s 0 -o {out}", "network"),
    ("info {P}", "network"),
    ("info --network {P}", "network"),
    ("mix -n {net} {P} seed:1 -o {out}", "latent"),
    ("mix -n {net} seed:0 {P} -o {out}", "latent"),
    ("mix -n {net} --average {P} seed:1 -o {out}", "latent"),
    ("interpolate -n {net} seed:1 {P} --frames 2 -o {out}/a.gif", "latent"),
    ("interpolate -n {P} seed:0 seed:1 --frames 2 -o {out}/a.gif", "network"),
    ("edit -n {net} {P} --direction {d}/dirs/unit.npy --strength 1 -o {out}", "latent"),
    ("edit -n {net} seed:0 --direction {P} --strength 1 -o {out}", "direction"),
    ("fid {P} {d}/faces --workers 0", "images"),
    ("fid {d}/faces {P} --workers 0 --num 2", "images"),
    ("fid {d}/faces {d}/faces --workers 0 --inception {P}", "inception"),
    ("fid {net} {d}/faces --workers 0 --num 2 --labels-from {P}", "dataset"),
    ("convert {P} {out}/x.safetensors", "network"),
    ("prepare {P} {out}/p", "photos"),
    ("prepare {d}/photos {out}/p --align celeba --labels {P}", "labels"),
    ("project {P} -n {net} --steps 1 --align none -o {out}", "photo"),
    ("project {d}/photos/000001.jpg -n {P} --steps 1 --align none -o {out}", "network"),
    ("train {P} --dry-run -o {out}", "dataset"),
    ("train {d}/faces --resume {P} -o {out} --workers 0", "checkpoint"),
    ("train {d}/faces --resume-from {P} --dry-run -o {out}", "network"),
    ("directions sefa {P} -o {out}", "network"),
    ("directions fit -n {net} --attr Smiling -c {P} --samples 40 -o {out}", "classifier"),
    ("directions fit {P} --attr Smiling -c {d}/classifier.safetensors --samples 40 -o {out}", "network"),
    ("classifier train {P} -o {out}/c.safetensors", "dataset"),
    ("eqt {P}", "network"),
    ("identity {P} {d}/photos/000001.jpg", "photo"),
    ("identity {d}/photos/000001.jpg {P}", "photo"),
    ("directions report {P} --seeds 0 -o {out}/r.png", "network"),
    ("encoder train {P} " + ENCODER + " -o {out}/e.safetensors", "network"),
    ("encoder train {net} --data {P} " + ENCODER + " -o {out}/e.safetensors", "dataset"),
    ("encoder train {net} --resume {P} " + ENCODER + " -o {out}/e.safetensors", "encoder"),
    ("studio -n {P} --port 0 --state {out}/state", "network"),
    ("studio -n {net} --port 0 --state {out}/state --data {P}", "quiz"),
]
# Every output: (template with {O}, whether it names a folder).
OUTPUT_SLOTS = [
    "generate -n {net} -s 0 -o {O}",
    "mix -n {net} seed:0 seed:1 -o {O}",
    "interpolate -n {net} seed:0 seed:1 --frames 2 -o {O}",
    "edit -n {net} seed:0 --direction {d}/dirs/unit.npy --strength 1 -o {O}",
    "project {d}/photos/000001.jpg -n {net} --steps 1 --align none -o {O}",
    "convert {net} {O}",
    "prepare {d}/photos {O} --align celeba",
    "train {d}/faces -o {O} --dry-run",
    "directions sefa {net} -k 1 -o {O}",
    "directions fit -n {net} --attr Smiling -c {d}/classifier.safetensors --samples 40 -o {O}",
    "classifier train {d}/labelled --epochs 1 --size 16 -o {O}",
    "directions report {net} --seeds 0 -o {O}",
    "encoder train {net} " + ENCODER + " -o {O}",
    "studio -n {net} --port 0 --state {O}",
]
BAD_OUTPUTS = ("/proc/facegen-corpus", "{d}/file/sub", "/dev/null", "{d}/fifo.jpg")
# Every number option: (template with {V}, the values among NUMBERS that are legal there[, values left out because
# they are legal and would start work that never ends: the studio serving]).
NUMBER_SLOTS = [
    ("generate -n {net} -s 0 -o {out} --psi {V}", {"-1", "0"}),
    ("generate -n {net} -s 0 -o {out} --batch {V}", set()),
    ("generate -n {net} -s 0 -o {out} --cutoff {V}", {"0"}),
    ("generate -n {net} -s {V} -o {out}", {"0"}),
    ("generate -n {net} -s 0-1 --grid {V} -o {out}", set()),
    ("generate -n {net} -s 0 -o {out} --noise-mode {V}", set()),
    ("generate -n {net} -s 0 -o {out} --format {V}", set()),
    ("generate -n {net} -s 0 -o {out} --label {V}", {"0", "-1"}),
    ("interpolate -n {net} seed:0 seed:1 -o {out}/a.gif --frames {V}", set()),
    ("interpolate -n {net} seed:0 seed:1 --frames 2 -o {out}/a.gif --fps {V}", set()),
    ("interpolate -n {net} seed:0 seed:1 --frames 2 -o {out}/a.gif --space {V}", set()),
    ("edit -n {net} seed:0 --direction {d}/dirs/unit.npy -o {out} --strength {V}", {"-1", "0"}),
    ("edit -n {net} seed:0 --direction {d}/dirs/unit.npy -o {out} --range -1:1 --steps {V}", set()),
    ("edit -n {net} seed:0 --direction {d}/dirs/unit.npy -o {out} --range {V}", set()),
    ("edit -n {net} seed:0 --direction {d}/dirs/unit.npy -o {out} --strength 1 --layers {V}", {"0"}),
    ("mix -n {net} seed:0 seed:1 -o {out} --average --weights {V}", set()),
    ("mix -n {net} seed:0 seed:1 -o {out} --layers {V}", {"0"}),
    ("mix -n {net} seed:{V} seed:1 -o {out}", {"0"}),
    ("fid {d}/faces {net} --workers 0 --num {V}", set()),
    ("fid {d}/faces {d}/faces --workers 0 --batch {V}", set()),
    ("fid {d}/faces {d}/faces --workers {V}", {"0"}),
    ("fid {d}/faces {net} --workers 0 --seeds {V}", set()),
    ("fid {d}/faces {net} --workers 0 --num 2 --psi {V}", {"-1", "0"}),
    ("train {d}/faces --dry-run -o {out} --kimg {V}", set()),
    ("train {d}/faces --dry-run -o {out} --batch {V}", set()),
    ("train {d}/faces --dry-run -o {out} --batch-gpu {V}", set()),
    ("train {d}/faces --dry-run -o {out} --glr {V}", set()),
    ("train {d}/faces --dry-run -o {out} --dlr {V}", set()),
    ("train {d}/faces --dry-run -o {out} --gamma {V}", {"0"}),
    ("train {d}/faces --dry-run -o {out} --pl-weight {V}", {"0"}),
    ("train {d}/faces --dry-run -o {out} --style-mixing {V}", {"0"}),
    ("train {d}/faces --dry-run -o {out} --snap {V}", set()),
    ("train {d}/faces --dry-run -o {out} --seed {V}", {"0"}),
    ("train {d}/faces --dry-run -o {out} --minutes {V}", set()),
    ("train {d}/faces --dry-run -o {out} --target {V}", {"0"}),
    ("train {d}/faces --dry-run -o {out} --res {V}", set()),
    ("classifier train {d}/labelled --epochs 1 --size 16 -o {out}/c.safetensors --lr {V}", set()),
    ("classifier train {d}/labelled --epochs 1 --size 16 -o {out}/c.safetensors --holdout {V}", set()),
    ("classifier train {d}/labelled --size 16 -o {out}/c.safetensors --epochs {V}", set()),
    ("classifier train {d}/labelled --epochs 1 -o {out}/c.safetensors --size {V}", set()),
    ("directions sefa {net} -o {out} -k {V}", set()),
    ("directions fit -n {net} --attr Smiling -c {d}/classifier.safetensors -o {out} --samples {V}", set()),
    ("directions fit -n {net} --attr Smiling -c {d}/classifier.safetensors -o {out} --samples 40 --ratio {V}",
     set()),
    ("directions fit -n {net} --attr {V} -c {d}/classifier.safetensors -o {out} --samples 40", set()),
    ("prepare {d}/photos {out}/p --align celeba --size {V}", set()),
    ("prepare {d}/photos {out}/p --align box --detector haar --margin {V}", {"0"}),
    ("prepare {d}/photos {out}/p --align celeba --min-face {V}", {"0"}),
    ("prepare {d}/photos {out}/p --detector haar --detect-size {V}", {"0"}),
    ("prepare {d}/photos {out}/p --detector haar --upsample {V}", {"0"}),
    ("project {d}/photos/000001.jpg -n {net} --align none -o {out} --steps {V}", set()),
    ("project {d}/photos/000001.jpg -n {net} --align none --steps 1 -o {out} --lr {V}", set()),
    ("eqt {net} --samples {V}", set()),
    ("edit seed:0 -o {out} --set Age={V}", set()),  # the shipped model's controls: Age is 5..90 years
    ("edit seed:0 -o {out} --set Yaw={V}", {"-1", "0"}),
    ("directions report {net} -o {out}/r.png --seeds {V}", {"0"}),
    ("directions report {net} --seeds 0 -o {out}/r.png --step {V}", set()),
    ("directions report {net} --seeds 0 -o {out}/r.png --psi {V}", {"-1", "0"}),
    ("encoder train {net} --batch 2 --perceptual-weight 0 -o {out}/e.safetensors --kimg {V}", set()),
    ("encoder train {net} " + ENCODER + " -o {out}/e.safetensors --minutes {V}", set()),
    ("encoder train {net} --kimg 0.004 --perceptual-weight 0 -o {out}/e.safetensors --batch {V}", set()),
    ("encoder train {net} " + ENCODER + " -o {out}/e.safetensors --lr {V}", set()),
    ("encoder train {net} --kimg 0.004 --batch 2 -o {out}/e.safetensors --perceptual-weight {V}", {"0"}),
    ("encoder train {net} " + ENCODER + " -o {out}/e.safetensors --seed {V}", {"0"}),
    ("studio -n {net} --state {out}/state --port {V}", set(), {"0"}),
]
# Words some options take, each case (template, expected exit); edit's run on the shipped model and its controls.
WORD_CASES = [(f"edit seed:0 -o {{out}} --set {spec}", 2) for spec in (
    "Foo=1", "Age=500", "Yaw=170", "Smiling=2", "Age", "Age=", "=5", "Age=abc", "Age=40,Age=50", "Age=40;50")] + [
    ("edit seed:0 -o {out} --set Age=40 --set age=50", 2),
    ("edit seed:0 -o {out} --set Age=40 --keep Age", 2),  # the same control set and kept
    ("edit seed:0 -o {out} --set Age=40 --keep Foo", 2),
    ("edit seed:0 -o {out} --set Age=40 --direction Smiling", 2),
    ("edit seed:0 -o {out} --set Age=40 --strength 1", 2),
    ("edit seed:0 -o {out} --direction Smiling --strength 1 --keep Male", 2),
    ("edit seed:0 -o {out} --keep Male", 2),
    ("edit -n {net} seed:0 -o {out} --set Age=40", 2),  # a network without fitted controls
    ("studio -n {net} --state {out}/state --port 65536", 2),
    ("studio -n {net} --state {out}/state --port 0 --host 300.1.2.3", 2),
    ("studio -n {net} --state {out}/state --port 0 --host 8.8.8.8", 1),  # not an address of this machine
    ("studio -n {net} --state {out}/state --port 0 --device abc", 2),
    ("identity {d}/white.png {d}/photos/000001.jpg", 1),  # no face in it
]


def cache_env(d: Path) -> dict[str, str]:
    """The environment that gives the corpus its own cache folder (direction store, studio state, FID features)."""
    return {"FACEGEN_CACHE": str(d / "cache")}


def build_cases(d: Path) -> list[Case]:
    """The whole corpus for fixtures under `d`."""
    cases: list[Case] = []
    counter = iter(range(10 ** 6))

    def add(name: str, template: str, expect: int | str, fragments: tuple[str, ...] = (), **values: str) -> None:
        out = f"{d}/out/{next(counter):04d}"
        args = template.format(net=f"{d}/net.safetensors", d=d, out=out, P="\0P", O="\0O", V="\0V").split()
        for key, value in values.items():
            args = [arg.replace(f"\0{key}", value) for arg in args]
        cases.append(Case(name, args, expect, fragments))

    def command(template: str) -> str:
        words = template.split()
        return " ".join(words[:2] if words[0] in GROUPS else words[:1])

    for template, kind in INPUT_SLOTS:
        name = command(template)
        for path_kind in PATH_KINDS + CORRUPT[kind]:
            path = _path(d, path_kind)
            named = "--labels-from" not in template  # fid finds the network unconditional first
            expect, fragments = (2, (path,) if named else ()) if path_kind in SPECIAL else ("err", ())
            add(f"input {name} [{kind}] {path_kind}", template, expect, fragments, P=path)
    for template in OUTPUT_SLOTS:
        for bad in BAD_OUTPUTS:
            path = bad.format(d=d)
            add(f"output {command(template)} {bad}", template, 2, (path,), O=path)
    for template, legal, *left_out in NUMBER_SLOTS:
        words = template.split()
        before = next(words[i - 1] for i, word in enumerate(words) if "{V}" in word)
        option = before if before.startswith("-") else "argument"
        for value in NUMBERS:
            if value not in (left_out[0] if left_out else ()):
                add(f"number {command(template)} {option} {value!r}", template,
                    "any" if value in legal else "err", V=value)
    for template, expect in WORD_CASES:
        add(f"words {command(template)} {' '.join(w for w in template.split()[1:] if '{' not in w)}", template, expect)
    return cases


def summary(outcomes: list[Outcome]) -> dict:
    """The counts RESULTS.md records."""
    problems = Counter(p.split(",")[0] if not p.startswith("exit ") or p == "exit 0" else "wrong exit code"
                       for o in outcomes for p in o.problems)
    return {"invocations": len(outcomes), "commands": len(commands_of(outcomes)),
            "tracebacks": problems["traceback"], "hangs": problems["hang"], "exit_0_on_invalid": problems["exit 0"],
            "wrong_exit_code": problems["wrong exit code"], "not_one_error_line": problems["not one error line"],
            "error_line_lacks_the_path": sum(1 for o in outcomes if any(p.startswith("error line lacks")
                                                                        for p in o.problems)),
            "seconds": round(sum(o.seconds for o in outcomes), 1)}


def commands_of(outcomes: list[Outcome]) -> set[str]:
    """The commands the cases ran, a group's subcommand as `group name`."""
    return {" ".join(o.case.args[:2] if o.case.args[0] in GROUPS else o.case.args[:1]) for o in outcomes}


def run_corpus(timeout: float = 60.0, only: str = "") -> tuple[dict, list[Outcome]]:
    """Make the fixtures in a temporary folder, run every case (or those whose name holds `only`), return the
    counts and the outcomes."""
    with tempfile.TemporaryDirectory(prefix="facegen-corpus-") as tmp:
        d = Path(tmp)
        make_fixtures(d)
        cases = [c for c in build_cases(d) if only in c.name]
        outcomes = run_cases(cases, timeout=timeout, cwd=d, env=cache_env(d))
        return summary(outcomes), outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every case with a problem here")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    parser.add_argument("--only", default="", help="run only the cases whose name holds this text")
    args = parser.parse_args()
    began = time.time()
    counts, outcomes = run_corpus(args.timeout, args.only)
    failed = [o for o in outcomes if o.problems]
    for o in failed:
        print(f"{o.case.name}: {'; '.join(o.problems)} :: {(o.stderr.strip().splitlines() or [''])[-1][:200]}")
    print(json.dumps({**counts, "wall_seconds": round(time.time() - began, 1)}))
    if args.json:
        args.json.write_text(json.dumps([{"name": o.case.name, "args": o.case.args, "problems": o.problems,
                                          "code": o.code, "stderr": o.stderr[-2000:]} for o in failed], indent=1))


if __name__ == "__main__":
    main()
