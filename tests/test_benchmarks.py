"""The prepared device checks stay runnable: benchmarks/gpu_check.py on the CPU, small."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_from_the_source_tree_on_the_cpu(reference_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GIFNET_WEIGHTS")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
         "--sizes", "0.004", "--cases", "Medical", "--precisions", "float32,bfloat16", "--stack", "3,64",
         "--reference", str(reference_dir)],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| Medical | 256 x 256 |" in out and "PASS (bound 1e-4)" in out
    rows = [line for line in out.splitlines() if line.startswith("| float32 |")
            or line.startswith("| bfloat16 |")]  # fmt: skip
    assert len(rows) == 2 and "(needs CUDA: skipped)" in out
    assert "| 3 planes of 64 x 64 |" in out and "| batches of 1 (from free memory) |" in out


def test_the_cpu_floor_counts_every_operation_kind_once(reference_weights: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_cpu_floor", ROOT / "benchmarks" / "bench_cpu_floor.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ours, published, kinds = bench.flops_per_pixel(str(reference_weights), side=64)
    assert set(kinds) == {"3x3 convolutions", "1x1 products", "attention", "depthwise 5x5"}
    assert abs(sum(kinds.values()) - ours) / ours < 0.01  # the kinds add up to the total
    # attention: 2 heads x 64 keys x 49 dims x 2 products x 2 FLOPs per token and stream-block
    assert kinds["attention"] / (3 * 2 * 64 * 49 * 2 * 2) == pytest.approx(1.0, rel=0.15)
    assert 1.1 < published / ours < 1.2  # the skipped stream of block 1
    # the decoder's complement on the CPU (products, one accumulating) is counted whole
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from napari_gifnet.model.weights import load_model

    decoder = load_model(str(reference_weights), device="cpu")[0].cnnDecoder
    maps = [torch.rand(1, 98, 16, 16).contiguous(memory_format=torch.channels_last) for _ in "st"]
    with torch.inference_mode(), FlopCounterMode(
        display=False, custom_mapping=bench.counter_mapping()
    ) as counted:
        decoder.complement(*maps)
    assert counted.get_total_flops() / 16**2 == 2 * (196 * 98 + 98 * 128)
