"""Each CPU mechanism of the engine alone against its absence, as whole processes.

Three questions, each answered by child processes run A/B/A/B in turn (one
process per run, the model loaded once per process; median and range over
the repeats; peak resident memory from ``getrusage``):

``run``
    The run-level memory machinery (``fusion_run``: the heap held across a
    run of fusions and the whole-image maps kept for the next fusion)
    against plain fusions in a row. Six
    512 x 512 planes fused one by one with :func:`napari_gifnet.fuse`, the
    outputs gathered in one stack array: in the thread that started Python
    (the command line, a script) and in a worker thread (napari's dock
    widget runs its fusion in one).
``rowwise``
    The CPU row-wise block kernels (``model._rowwise``) against the
    whole-map convolutions they replace (``cache_friendly`` made to answer
    False): one 1024 x 1024 pair.
``retry``
    The out-of-memory retries: one 512 x 512 pair under a data-segment limit
    (``RLIMIT_DATA``) a given number of MB above what the process holds with
    the model loaded; says which try succeeded (0: the first; 1: scratch
    storage in tiles of a quarter of the pixels; 2: recomputation in tiles of
    a sixteenth) or that none did.

Run from the repository root (Linux; torch threads default to 1 so that the
two variants share the cores alike)::

    GIFNET_WEIGHTS=../shared/reference/weights/gifnet-official.pth \\
        python benchmarks/bench_mechanisms.py --repeats 3 > results.md
    python benchmarks/bench_mechanisms.py --only rowwise --repeats 5
    python benchmarks/bench_mechanisms.py --only run --where main --planes 3 \\
        --plane-size 1024 --run-variants on heap off

Prints markdown tables. Shared machines are noisy: the variants alternate
and the spread (min to max) is printed next to each median; compare a
mechanism's two columns only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

PLANES, PLANE_SIZE = 6, 512
ROWWISE_SIZE = 1024
RETRY_SIZE = 512


def _pair(size: int, seed: int = 0) -> tuple[Any, Any]:
    """A registered pair of ``size`` x ``size`` float images with structure at several scales."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.random((size // 8 + 1, size // 8 + 1))
    scene = np.kron(base, np.ones((8, 8)))[:size, :size]
    noise = 0.05 * rng.standard_normal((size, size))
    return scene.astype(np.float32), np.clip(1 - scene + noise, 0, 1).astype(np.float32)


def _usage() -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_gb": ru.ru_maxrss / 1024**2, "faults": ru.ru_minflt, "sys_s": ru.ru_stime}


def _child_run(variant: str, where: str, planes: int, size: int) -> dict[str, Any]:
    """Fuse ``planes`` planes one by one, in the main thread or a worker thread."""
    import numpy as np

    import napari_gifnet
    import napari_gifnet.engine as engine

    pairs = [_pair(size, seed) for seed in range(planes)]
    napari_gifnet.fuse(*_pair(64), device="cpu")  # the model loaded before the clock starts
    from napari_gifnet.engine._memory import free_heap_bytes, reuse_heap
    from napari_gifnet.engine.tiled.stores import POOL

    run = {"on": engine.fusion_run, "heap": reuse_heap}.get(variant, contextlib.nullcontext)
    marks: list[float] = []
    before: dict[str, float] = {}
    held: list[int] = []

    def work() -> None:
        before.update(_usage())
        marks.append(time.perf_counter())
        with run():
            out = None
            for i, (a, b) in enumerate(pairs):
                image = napari_gifnet.fuse(a, b, device="cpu").image
                if out is None:
                    out = np.zeros((planes, *image.shape), np.float32)
                out[i] = image
                marks.append(time.perf_counter())
            held.append(free_heap_bytes() + POOL.nbytes())  # what the planner adds back

    if where == "main":
        work()
    else:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    after, steps = _usage(), np.diff(marks)
    return {
        "s_per_plane": float(np.mean(steps)),
        "later_s_per_plane": float(np.mean(steps[1:])),
        "faults_per_plane": (after["faults"] - before["faults"]) / planes,
        "sys_s_per_plane": (after["sys_s"] - before["sys_s"]) / planes,
        "peak_gb": after["peak_gb"],
        "held_gb": held[0] / 1e9,
    }


def _child_rowwise(variant: str) -> dict[str, Any]:
    import napari_gifnet
    from napari_gifnet.model import _transformer, network

    if variant == "off":
        for module in (_transformer, network):
            module.cache_friendly = lambda x: False
    a, b = _pair(ROWWISE_SIZE)
    napari_gifnet.fuse(*_pair(64), device="cpu")
    start = time.perf_counter()
    napari_gifnet.fuse(a, b, device="cpu")
    return {"s_per_fusion": time.perf_counter() - start, "peak_gb": _usage()["peak_gb"]}


def _data_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmData in /proc/self/status")


def _child_retry(headroom_mb: int) -> dict[str, Any]:
    import napari_gifnet
    from napari_gifnet.engine import eager

    tries: list[str] = []
    real = eager.fuse_tiled

    def recorded(*args: Any, plan: Any, **kwargs: Any) -> Any:
        tries.append(f"{plan.storage} {plan.out.rows}x{plan.out.cols}")
        try:
            return real(*args, plan=plan, **kwargs)
        except BaseException as exc:
            tries[-1] += f" ({type(exc).__name__}: {str(exc)[:60]})"
            raise

    eager.fuse_tiled = recorded
    a, b = _pair(RETRY_SIZE)
    napari_gifnet.fuse(*_pair(64), device="cpu")
    tries.clear()
    limit = _data_bytes() + headroom_mb * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.RLIM_INFINITY))
    start = time.perf_counter()
    try:
        run = napari_gifnet.fuse(a, b, device="cpu").metadata
    except (MemoryError, RuntimeError) as exc:  # RuntimeError: not taken for running out
        why = f"{type(exc).__name__}: {exc}"
        return {"ok": False, "s": time.perf_counter() - start, "why": why[:300], "tries": tries}
    return {
        "ok": True,
        "s": time.perf_counter() - start,
        "retries": run["out_of_memory_retries"],
        "storage": run["storage"],
        "tile_pixels": run["tile_pixels"],
        "tries": tries,
    }


def _spawn(args: list[str], threads: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = str(ROOT / "src")
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def _summary(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def _ab(
    case: list[str], repeats: int, threads: int, variants: tuple[str, ...] = ("on", "off")
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(repeats):
        for variant in variants:
            result = _spawn([*case, variant], threads)
            print(f"<!-- {' '.join(case)} {variant}: {result} -->", flush=True)
            runs[variant].append(result)
    return runs


def _column(runs: list[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in runs if key in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("run", "rowwise", "retry"), action="append")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the children")
    parser.add_argument(
        "--headroom",
        type=int,
        nargs="+",
        default=[1200, 600, 300, 150, 75],
        help="MB above the loaded model's data segment, for the retry runs",
    )
    parser.add_argument(
        "--run-variants",
        nargs="+",
        default=["on", "off"],
        choices=("on", "heap", "off"),
        help="for the run: fusion_run, the heap held without kept maps, nothing",
    )
    parser.add_argument("--planes", type=int, default=PLANES)
    parser.add_argument("--plane-size", type=int, default=PLANE_SIZE)
    parser.add_argument(
        "--where", nargs="+", default=["main", "worker"], choices=("main", "worker")
    )
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        kind, *rest = args.child
        if kind == "run":
            print(json.dumps(_child_run(rest[3], rest[0], int(rest[1]), int(rest[2]))))
        elif kind == "rowwise":
            print(json.dumps(_child_rowwise(rest[0])))
        else:
            print(json.dumps(_child_retry(int(rest[0]))))
        return
    only = set(args.only or ("run", "rowwise", "retry"))
    print(
        f"CPU, {args.threads} thread(s) per process, {args.repeats} repeats per variant, "
        "A/B in turn; median (min-max)\n"
    )
    if "run" in only:
        print(
            f"| run of {args.planes} x {args.plane_size}^2 planes | fusion_run | s/plane | "
            "s/plane after the first | page faults/plane | system s/plane | peak RSS GB "
            "| held for reuse GB |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for where in args.where:
            case = ["run", where, str(args.planes), str(args.plane_size)]
            runs = _ab(case, args.repeats, args.threads, tuple(args.run_variants))
            for variant in args.run_variants:
                r = runs[variant]
                print(
                    f"| {where} thread | {variant} | {_summary(_column(r, 's_per_plane'), '.2f')} "
                    f"| {_summary(_column(r, 'later_s_per_plane'), '.2f')} "
                    f"| {_summary(_column(r, 'faults_per_plane'), '.0f')} "
                    f"| {_summary(_column(r, 'sys_s_per_plane'), '.2f')} "
                    f"| {_summary(_column(r, 'peak_gb'), '.2f')} "
                    f"| {_summary(_column(r, 'held_gb'), '.2f')} |",
                    flush=True,
                )
        print()
    if "rowwise" in only:
        print(f"| one {ROWWISE_SIZE}^2 fusion | row-wise kernels | s/fusion | peak RSS GB |")
        print("| --- | --- | --- | --- |")
        runs = _ab(["rowwise"], args.repeats, args.threads)
        for variant in ("on", "off"):
            r = runs[variant]
            print(
                f"| CPU | {variant} | {_summary(_column(r, 's_per_fusion'), '.2f')} "
                f"| {_summary(_column(r, 'peak_gb'), '.2f')} |",
                flush=True,
            )
        print()
    if "retry" in only:
        print(
            f"| one {RETRY_SIZE}^2 fusion, RLIMIT_DATA headroom | result | try that succeeded "
            "| storage | tile pixels | s | tries |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for headroom in args.headroom:
            r = _spawn(["retry", str(headroom)], args.threads)
            print(f"<!-- retry {headroom}: {r} -->", flush=True)
            if r.get("ok"):
                print(
                    f"| {headroom} MB | fused | {r['retries']} | {r['storage']} "
                    f"| {r['tile_pixels']} | {r['s']:.1f} | {'; '.join(r['tries'])} |",
                    flush=True,
                )
            else:
                why = r.get("why") or r.get("error")
                tries = "; ".join(r.get("tries", []))
                print(
                    f"| {headroom} MB | failed: {str(why)[:60]} | - | - | - | - | {tries} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
