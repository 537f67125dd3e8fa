"""Where one plain training step of the shipped model's config spends its time: torch.profiler over
`Trainer.train_step` (the config, the step and the batch of `benchmarks.train_flops`), after warm-up steps.

One JSON object: the step's wall seconds, self CPU time by kind of op (convolution and its backward,
matmuls, copies and layout conversions, element-wise and reductions, everything else), the ops whose
mean self time is under 20 us (many small ops), and the top ops by self CPU time with their calls.

    python -m benchmarks.train_profile --threads 2 [--top 30] [--precision fp32]
    python -m benchmarks.train_profile --quick          # the tiny config
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks import harness
from benchmarks.train_flops import DEFAULT_RUN, QUICK_RUN, plain_step

KINDS = {  # kind -> aten op names (self time), the rest is "other"
    "convolution": ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_slow_conv2d_forward",
                    "aten::_slow_conv2d_backward", "aten::thnn_conv2d", "aten::_convolution",
                    "aten::slow_conv_transpose2d", "aten::mkldnn_convolution_backward"),
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul"),
    "copies and layouts": ("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::to",
                           "aten::empty_strided", "aten::as_strided_", "aten::constant_pad_nd", "aten::cat",
                           "aten::flip", "aten::index", "aten::index_put_", "aten::fill_", "aten::zero_"),
    "element-wise and reductions": ("aten::mul", "aten::add", "aten::add_", "aten::mul_", "aten::sub",
                                    "aten::div", "aten::rsqrt", "aten::sum", "aten::mean", "aten::square",
                                    "aten::pow", "aten::leaky_relu", "aten::leaky_relu_", "aten::leaky_relu_backward",
                                    "aten::where", "aten::lerp", "aten::nan_to_num",
                                    "aten::softplus", "aten::softplus_backward", "aten::sqrt", "aten::lerp_",
                                    "aten::addcmul_", "aten::addcdiv_", "aten::threshold_backward",
                                    "aten::randn", "aten::normal_", "aten::neg", "aten::exp", "aten::maximum",
                                    "aten::_foreach_mul_", "aten::_foreach_add_", "aten::_foreach_lerp_",
                                    "aten::_foreach_addcmul_", "aten::_foreach_addcdiv_", "aten::_foreach_sqrt",
                                    "aten::_foreach_div_", "aten::_foreach_add", "aten::_foreach_mul"),
}
SMALL_US = 20.0


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the two cores)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = parser.parse_args()
    torch.set_num_threads(1 if args.quick else args.threads)
    folder = Path(tempfile.mkdtemp(prefix="facegen-train-profile-"))
    try:
        _, _, step = plain_step(QUICK_RUN if args.quick else DEFAULT_RUN, args.precision, folder)
        for _ in range(2):
            step()
        start = time.perf_counter()
        step()
        wall = time.perf_counter() - start
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
    finally:
        shutil.rmtree(folder)
    events = prof.key_averages()
    self_us = {e.key: e.self_cpu_time_total for e in events}
    total = sum(self_us.values())
    kinds = {kind: sum(self_us.get(name, 0.0) for name in names) for kind, names in KINDS.items()}
    kinds["other"] = total - sum(kinds.values())
    small = [e for e in events if e.count and e.self_cpu_time_total / e.count < SMALL_US]
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]
    record = {"precision": args.precision, "threads": torch.get_num_threads(), "step_wall_s": round(wall, 3),
              "profiled_self_cpu_s": round(total / 1e6, 3),
              "by_kind_s": {k: round(v / 1e6, 3) for k, v in kinds.items()},
              "by_kind_share": {k: round(v / total, 3) for k, v in kinds.items()},
              "small_ops": {"under_us": SMALL_US, "ops": len(small), "calls": sum(e.count for e in small),
                            "self_cpu_s": round(sum(e.self_cpu_time_total for e in small) / 1e6, 3)},
              "calls": sum(e.count for e in events),
              "top": [{"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 1),
                       "share": round(e.self_cpu_time_total / total, 3)} for e in top]}
    harness.write([{**record, "machine": harness.machine(), "load": harness.load_average()}], args.out)


if __name__ == "__main__":
    main()
