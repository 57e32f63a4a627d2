#!/usr/bin/python3
"""Side by side: the depthwise 3x3 convolution here and in PyTorch, one thread.

Times the forward pass and the backward pass (dx, dw, db) of a depthwise 3x3 convolution
(stride 1, padding 1, one filter per channel: MobileNet's step) at batch 64 on the small
ResNet's three stages (16 x 28 x 28, 32 x 14 x 14, 64 x 7 x 7): ours through
bench/bench_layers (Google Benchmark), PyTorch's torch.nn.Conv2d(c, c, 3, padding=1,
groups=c) in a worker process with compare_pytorch.py's settings (OpenBLAS, OPENBLAS_CORETYPE
and OPENBLAS_L2_SIZE unset, one thread, glibc's malloc kept from returning memory; the script
stops if PyTorch loaded another BLAS), each after 0.3 s of warm-up (PyTorch's first calls of a shape are 50x slower). The two sides alternate --repeats
times and each figure is the best run, so a slow minute of a shared machine falls on both.

    /usr/bin/python3 bench/compare_depthwise.py --bench build/release/bench/bench_layers
"""
import argparse
import json
import re
import subprocess
import sys
import time

from compare_pytorch import run_torch_worker, start_torch, torch_version  # the same PyTorch settings and BLAS check

STAGES = [(16, 28), (32, 14), (64, 7)]
BATCH = 64


def torch_worker():
    import torch
    import torch.nn as nn

    start_torch(1)

    def best_ms(run, seconds=0.3):
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:  # warm-up: PyTorch's first calls of a shape are slow
            run()
        best, start = float("inf"), time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t)
        return best * 1e3

    for stage, (channels, size) in enumerate(STAGES):
        conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        x = torch.rand(BATCH, channels, size, size, requires_grad=True) * 2 - 1
        x = x.detach().requires_grad_()
        dy = torch.rand(BATCH, channels, size, size) * 2 - 1
        with torch.no_grad():
            forward = best_ms(lambda: conv(x))
        y = conv(x)
        backward = best_ms(lambda: torch.autograd.grad(y, [x, conv.weight, conv.bias], dy, retain_graph=True))
        print(f"stage {stage} forward {forward:.4f} backward {backward:.4f}")


def run_torch():
    out, _ = run_torch_worker(__file__, [], 1)
    return {(int(m[0]), pass_): float(m[1 if pass_ == "forward" else 2])
            for m in re.findall(r"stage (\d) forward ([0-9.]+) backward ([0-9.]+)", out) for pass_ in ("forward", "backward")}


def run_ours(bench):
    out = subprocess.run([bench, "--benchmark_filter=depthwise_(forward|backward)/[0-2]/1/", "--benchmark_format=json",
                          "--benchmark_min_time=0.3"], check=True, capture_output=True, text=True).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        m = re.match(r"depthwise_(forward|backward)/(\d)/1/", b["name"])
        times[int(m[2]), m[1]] = b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0}[b["time_unit"]]
    return times


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        torch_worker()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True, help="path to bench_layers (a Release build)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ours, theirs = {}, {}
    for _ in range(args.repeats):
        for side, run in ((ours, lambda: run_ours(args.bench)), (theirs, run_torch)):
            for key, ms in run().items():
                side[key] = min(side.get(key, float("inf")), ms)
    print(f"| pass | stage | this library (ms) | PyTorch {torch_version()} (ms) | speed ratio |")
    print("|---|---|---|---|---|")
    for pass_ in ("forward", "backward"):
        for stage, (channels, size) in enumerate(STAGES):
            a, b = ours[stage, pass_], theirs[stage, pass_]
            print(f"| {pass_} | {channels} x {size} x {size} | {a:.3f} | {b:.3f} | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
