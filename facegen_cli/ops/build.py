"""Compile the CUDA kernels of the ops on first use, cache them, fall back to the references.

Each op `<name>` has `csrc/<name>.cpp` (Python binding, argument checks) and `csrc/<name>.cu`
(kernel). On the first CUDA call of any op, every op is built with
`torch.utils.cpp_extension` for the GPU present, into `torch_extensions` of facegen's
user cache (`paths.cache_dir`: $FACEGEN_CACHE, else $XDG_CACHE_HOME/facegen or
~/.cache/facegen), one folder per torch build and GPU architecture; later processes load
the cached library. An op that cannot be built (no CUDA toolkit, no ninja, a compile
error) runs its plain-PyTorch reference, and the process says so in one `CudaOpsWarning`.

`python -m facegen_cli.ops.build --check` compiles every op for `TORCH_CUDA_ARCH_LIST`
without needing a GPU (`make check-cuda`); without `--check` it prints `describe_ops()`.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Iterator

import torch

from facegen_cli.paths import cache_dir

OPS = ("bias_act", "upfirdn2d")
CSRC_DIR = Path(__file__).with_name("csrc")

log = logging.getLogger(__name__)


class CudaOpsWarning(UserWarning):
    """Ops run their plain-PyTorch reference on a CUDA device: same results, slower."""


class ToolkitNotFound(RuntimeError):
    """No usable CUDA toolkit (a folder with bin/nvcc and lib64/libcudart.so)."""


def cache_root() -> Path:
    """Where built kernels are kept: `torch_extensions` in facegen's user cache (created if need be)."""
    return cache_dir("torch_extensions")


def _is_toolkit(home: str | Path) -> bool:
    home = Path(home)
    return (home / "bin" / "nvcc").is_file() and (home / "lib64" / "libcudart.so").exists()


def _nvcc_home(nvcc: str) -> str | None:
    """The toolkit behind an nvcc on PATH, which may be a symlink or a wrapper script."""
    real = Path(nvcc).resolve().parent.parent
    if _is_toolkit(real):
        return str(real)
    try:
        dry = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    # nvcc reports where its own binaries live as "#$ _HERE_=<toolkit>/bin".
    match = re.search(r"^#\$ _HERE_=(.+)$", dry.stdout + dry.stderr, re.MULTILINE)
    if match and _is_toolkit(Path(match.group(1).strip()).parent):
        return str(Path(match.group(1).strip()).parent)
    return None


def find_cuda_home() -> str:
    """The CUDA toolkit to compile with: $CUDA_HOME (or $CUDA_PATH) when set, else the
    toolkit of the nvcc on PATH, else /usr/local/cuda. Raises ToolkitNotFound."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home:
            if _is_toolkit(home):
                return home
            raise ToolkitNotFound(f"{var}={home} has no bin/nvcc and lib64/libcudart.so")
    nvcc = shutil.which("nvcc")
    home = _nvcc_home(nvcc) if nvcc else None
    if home is None and _is_toolkit("/usr/local/cuda"):
        home = "/usr/local/cuda"
    if home is None:
        raise ToolkitNotFound("no CUDA toolkit found: set CUDA_HOME to the folder with bin/nvcc "
                              "and lib64/libcudart.so")
    return home


def _use_toolkit(home: str) -> ModuleType:
    """torch.utils.cpp_extension, compiling with the toolkit at `home`."""
    # cpp_extension guesses CUDA_HOME once, at import, from the environment or from the nvcc
    # on PATH (wrong when that nvcc is a wrapper); give it the toolkit found above.
    os.environ.setdefault("CUDA_HOME", home)
    from torch.utils import cpp_extension

    cpp_extension.CUDA_HOME = home
    return cpp_extension


def gencode_flags(arch_list: str) -> list[str]:
    """nvcc -gencode flags for a TORCH_CUDA_ARCH_LIST string such as "9.0" or "8.0;8.6+PTX"."""
    flags: list[str] = []
    for item in re.split(r"[;\s]+", arch_list.strip()):
        if not item:
            continue
        match = re.fullmatch(r"(\d+)\.(\d+)([a-z]?)(\+PTX)?", item)
        if match is None:
            raise ValueError(f"bad CUDA architecture {item!r} (expected e.g. 9.0, 8.6+PTX)")
        num = match.group(1) + match.group(2) + match.group(3)
        flags.append(f"-gencode=arch=compute_{num},code=sm_{num}")
        if match.group(4):
            flags.append(f"-gencode=arch=compute_{num},code=compute_{num}")
    if not flags:
        raise ValueError("empty CUDA architecture list")
    return flags


def build_dir(name: str, arch_list: str, cache: Path | None = None) -> Path:
    """The folder of one op's build: per torch build, Python and GPU architecture list."""
    tag = f"torch{torch.__version__}-cuda{torch.version.cuda}-py{sys.version_info[0]}{sys.version_info[1]}"
    arch = "sm_" + "_".join(re.findall(r"\d+[a-z]?", arch_list.replace(".", "")))
    return (cache or cache_root()) / tag / arch / name


def compile_op(name: str, arch_list: str, csrc_dir: Path = CSRC_DIR, cache: Path | None = None,
               verbose: bool = False) -> ModuleType:
    """Build (or load the cached build of) one op for `arch_list`; raises on any failure."""
    cpp_extension = _use_toolkit(find_cuda_home())
    folder = build_dir(name, arch_list, cache)
    folder.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(
        name=f"facegen_{name}",
        sources=[str(csrc_dir / f"{name}.cpp"), str(csrc_dir / f"{name}.cu")],
        extra_cuda_cflags=gencode_flags(arch_list),
        build_directory=str(folder),
        verbose=verbose,
    )


def _first_error(exc: BaseException) -> str:
    """One line out of a build log: the first compiler error, else the first line."""
    text = str(exc)
    for line in text.splitlines():
        if re.search(r"\berror\b", line, re.IGNORECASE) and "Error building extension" not in line:
            return line.strip()[:240]
    return (text.splitlines() or [type(exc).__name__])[0].strip()[:240]


@dataclass(frozen=True)
class OpStatus:
    module: ModuleType | None  # the compiled extension, or None: the reference runs
    reason: str  # which path the op takes and why, for `facegen info --ops`


class OpsLoader:
    """Builds every op once per process, on first use, and warns at most once."""

    def __init__(self, csrc_dir: Path = CSRC_DIR, cache: Path | None = None):
        self._csrc_dir = csrc_dir
        self._cache = cache
        self._status: dict[str, OpStatus] | None = None
        self._lock = threading.Lock()

    def status(self) -> dict[str, OpStatus]:
        with self._lock:
            if self._status is None:
                self._status = self._load_all()
            return self._status

    def _load_all(self) -> dict[str, OpStatus]:
        if not torch.cuda.is_available():
            why = "no CUDA device" if torch.version.cuda else "this torch build has no CUDA"
            return {op: OpStatus(None, f"reference: {why}") for op in OPS}
        major, minor = torch.cuda.get_device_capability()
        arch = f"{major}.{minor}"
        try:
            find_cuda_home()
        except ToolkitNotFound as exc:
            status = {op: OpStatus(None, f"reference: {exc}") for op in OPS}
        else:
            status = {op: self._load_one(op, arch) for op in OPS}
        failed = [op for op, s in status.items() if s.module is None]
        if failed:
            reasons = "; ".join(f"{op}: {status[op].reason.removeprefix('reference: ')}" for op in failed)
            warnings.warn(f"CUDA kernels unavailable, {', '.join(failed)} run the plain-PyTorch reference "
                          f"(same results, slower). {reasons}. `python -m facegen_cli.ops.build --check -v` "
                          "shows the full build log.", CudaOpsWarning, stacklevel=2)
        return status

    def _load_one(self, op: str, arch: str) -> OpStatus:
        log.info("compiling the %s CUDA kernel for sm_%s (first use; takes minutes, cached after)",
                 op, arch.replace(".", ""))
        try:
            module = compile_op(op, arch, self._csrc_dir, self._cache)
        except Exception as exc:  # noqa: BLE001 - any build failure means: use the reference
            return OpStatus(None, f"reference: build failed ({_first_error(exc)})")
        folder = build_dir(op, arch, self._cache)
        return OpStatus(module, f"cuda kernel (sm_{arch.replace('.', '')}, built in {folder})")


_LOADER = OpsLoader()
_forced = threading.local()


def cuda_op(name: str) -> ModuleType | None:
    """The compiled extension of op `name`, or None when its reference must run."""
    if getattr(_forced, "reference", False):
        return None
    return _LOADER.status()[name].module


def describe_ops() -> dict[str, str]:
    """{op: which path it takes on this machine's CUDA tensors, and why}. Builds the kernels
    when a GPU is present and they are not built yet. CPU tensors always take the reference."""
    forced = getattr(_forced, "reference", False)
    return {op: "reference: forced by reference_ops()" if forced else s.reason
            for op, s in _LOADER.status().items()}


@contextlib.contextmanager
def reference_ops() -> Iterator[None]:
    """Within this block (in this thread) every op runs its reference: for benchmarks, tests."""
    before = getattr(_forced, "reference", False)
    _forced.reference = True
    try:
        yield
    finally:
        _forced.reference = before


def _check(verbose: bool) -> int:
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if not arch and torch.cuda.is_available():
        arch = "{}.{}".format(*torch.cuda.get_device_capability())
    if not arch:
        print("set TORCH_CUDA_ARCH_LIST (e.g. 9.0): no GPU here to build for", file=sys.stderr)
        return 2
    try:
        home = find_cuda_home()
    except ToolkitNotFound as exc:
        print(f"cannot compile: {exc}", file=sys.stderr)
        return 1
    print(f"compiling {', '.join(OPS)} for {arch} with the toolkit in {home}", file=sys.stderr)
    failures = 0
    for op in OPS:
        start = time.perf_counter()
        try:
            compile_op(op, arch, verbose=verbose)
        except Exception as exc:  # noqa: BLE001 - report every op's failure, then exit non-zero
            failures += 1
            print(f"{op}: FAILED after {time.perf_counter() - start:.0f} s\n{exc}", file=sys.stderr)
        else:
            print(f"{op}: ok, {time.perf_counter() - start:.0f} s, in {build_dir(op, arch)}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facegen_cli.ops.build",
                                     description="Build facegen's CUDA ops and say which path each op takes.")
    parser.add_argument("--check", action="store_true",
                        help="compile every op for TORCH_CUDA_ARCH_LIST (no GPU needed); exit 1 on failure")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the compiler's output")
    args = parser.parse_args(argv)
    if args.check:
        return _check(args.verbose)
    for op, reason in describe_ops().items():
        print(f"{op}\t{reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
