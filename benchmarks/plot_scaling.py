"""Plot the table of ``bench_scaling.py`` (time and peak memory against size).

    python benchmarks/plot_scaling.py docs/scaling.md docs/images/scaling.png

Reads the first Markdown table of the input file whose header starts with
``| MP |`` and draws two panels: time and peak resident memory against
megapixels, one line per storage mode (runs with ``auto`` count for the storage it chose).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path


def read_table(path: Path) -> dict[str, list[tuple[float, float, float]]]:
    """Storage -> [(megapixels, seconds, peak GB)] from the Markdown table."""
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    inside = False
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "MP":
            inside = True
            continue
        if not inside:
            continue
        if not line.startswith("|"):
            break
        try:
            mp, storage, seconds, peak = float(cells[0]), cells[2], float(cells[3]), float(cells[4])
        except (ValueError, IndexError):
            continue
        storage = storage.replace("auto (", "").rstrip(")")  # the storage auto chose
        if all(p[0] != mp for p in rows[storage]):  # keep the explicit run of a size
            rows[storage].append((mp, seconds, peak))
    return rows


def main(argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, out = read_table(Path(argv[0])), Path(argv[1])
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for storage, points in sorted(table.items()):
        points.sort()
        mp = [p[0] for p in points]
        ax_t.plot(mp, [p[1] for p in points], "o-", label=storage)
        ax_m.plot(mp, [p[2] for p in points], "o-", label=storage)
    for ax, what in ((ax_t, "time (s)"), (ax_m, "peak resident memory (GB)")):
        ax.set_xscale("log")
        if ax is ax_t:
            ax.set_yscale("log")
        ax.set_xlabel("image size (megapixels)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="storage")
    ax_m.axhline(3.0, color="grey", linestyle="--", linewidth=1)
    ax_m.set_ylim(bottom=0)
    fig.suptitle("GIFNet fusion on a 2-core CPU (napari-gifnet, exact tiled inference)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
