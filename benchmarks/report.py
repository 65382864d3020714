"""Print the tables of ratios from pytest-benchmark JSON files, and draw them.

    python -m pytest benchmarks --benchmark-enable --benchmark-json=cpython.json
    python benchmarks/report.py cpython.json [pypy.json ...]
    python benchmarks/report.py --plot ratios.png cpython.json [pypy.json ...]

Round trips are time per message, and their ratios are ours / baseline (lower
is better); two-process figures are messages per second, and their ratios are
ours / baseline (higher is better). Each file's ratios use only its own run.
--plot draws the "/ C" column of both tables, a row of charts per file (it
needs matplotlib, in the bench extra).
"""

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Tuple

Key = Tuple[str, int, str]  # (case, size, impl)
Row = Tuple[int, str, float, Optional[float], Optional[float]]  # (size, impl, value, / C, / sysv_ipc)

# The floors before what they bound: C alone, C with the copies a bytes API
# must make, sysv_ipc, sysvmq's two C helpers called bare, the same behind
# sysvmq's signatures; into_floor and batch_floor before their calls.
ROUND_TRIP_ROWS = (
    "c",
    "c_copies",
    "sysv_ipc",
    "cffi_floor",
    "signature_floor",
    "sysvmq",
    "sysvmq_message",
    "sysvmq_timed",
    "into_floor",
    "sysvmq_into",
    "batch_floor",
    "sysvmq_many",
    "sysvmq_many_messages",
    "sysvmq_many_lengths",
)
TWO_PROCESS_ROWS = ("c", "sysv_ipc", "signature_floor", "sysvmq", "sysvmq_many")


def _load(path: str) -> Tuple[str, Dict[Key, float], Dict[str, Dict[str, float]]]:
    with open(path) as f:
        doc = json.load(f)
    info = doc["machine_info"]
    cpu = info.get("cpu", {}).get("brand_raw", "")
    where = f"{info['python_implementation']} {info['python_version']} on {cpu}, {doc['datetime'][:10]}"
    per_message: Dict[Key, float] = {}
    extras: Dict[str, Dict[str, float]] = {}
    for bench in doc["benchmarks"]:
        extra = bench["extra_info"]
        if "case" in extra:
            key = (extra["case"], extra["size"], extra["impl"])
            per_message[key] = bench["stats"]["median"] / extra["messages"]
        else:
            extras[bench["name"]] = extra
    return where, per_message, extras


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a and b else None


def _shown(ratio: Optional[float]) -> str:
    return f"{ratio:.2f}x" if ratio is not None else "-"


def tables(t: Dict[Key, float]) -> Tuple[List[Row], List[Row]]:
    """The round-trip rows (ns per message, time ratios) and the two-process rows (messages/s, throughput ratios)."""
    cases = sorted({(case, size) for case, size, _ in t})
    round_trip: List[Row] = []
    two_process: List[Row] = []
    for case, size in cases:
        c, ipc = t.get((case, size, "c")), t.get((case, size, "sysv_ipc"))
        if case == "roundtrip":
            for impl in ROUND_TRIP_ROWS:
                if (case, size, impl) in t:
                    mine = t[(case, size, impl)]
                    round_trip.append((size, impl, mine * 1e9, _ratio(mine, c), _ratio(mine, ipc)))
        elif case == "two processes":
            for impl in TWO_PROCESS_ROWS:
                if (case, size, impl) in t:
                    mine = t[(case, size, impl)]
                    two_process.append((size, impl, 1 / mine, _ratio(c, mine), _ratio(ipc, mine)))
    return round_trip, two_process


def report(path: str) -> List[str]:
    where, t, extras = _load(path)
    round_trip, two_process = tables(t)
    lines = [f"### {where}", ""]
    lines += [
        "Round trip in one process, per message (send, then receive it back): time, and time ratios",
        "",
        "| size | implementation | ns/message | / C | / sysv_ipc |",
        "|---:|---|---:|---:|---:|",
    ]
    for size, impl, ns, by_c, by_ipc in round_trip:
        lines.append(f"| {size} | {impl} | {ns:,.0f} | {_shown(by_c)} | {_shown(by_ipc)} |")
    lines += [
        "",
        "Two processes, producer and consumer: messages per second, and throughput ratios",
        "",
        "| size | implementation | messages/s | / C | / sysv_ipc |",
        "|---:|---|---:|---:|---:|",
    ]
    for size, impl, rate, by_c, by_ipc in two_process:
        lines.append(f"| {size} | {impl} | {rate:,.0f} | {_shown(by_c)} | {_shown(by_ipc)} |")
    order = ("snapshot", "metrics", "exporter")
    scrapes = sorted(
        ((size, impl, t[(case, size, impl)]) for case, size, impl in t if case == "scrape"),
        key=lambda row: order.index(row[1]) if row[1] in order else len(order),
    )
    if scrapes:
        lines += ["", "One scrape: the kernel's queue table in one pass", "", "| queues | what | ms per scrape |"]
        lines += ["|---:|---|---:|"] + [f"| {n:,} | {impl} | {sec * 1e3:.2f} |" for n, impl, sec in scrapes]
    if extras:
        lines += ["", "Timed waits", ""]
        for name, extra in sorted(extras.items()):
            figures = ", ".join(f"{k} {v:.2f}" for k, v in sorted(extra.items()))
            lines.append(f"- {name}: {figures}")
    return [*lines, ""]


# Floors in greys, the C extension in orange, sysvmq's calls in blues: the eye finds ours first.
COLOURS = {
    "c": "#222222",
    "c_copies": "#555555",
    "sysv_ipc": "#e8862a",
    "cffi_floor": "#8c8c8c",
    "signature_floor": "#b0b0b0",
    "sysvmq": "#1f4e9c",
    "sysvmq_message": "#2a5bb0",
    "sysvmq_timed": "#2c64c4",
    "into_floor": "#c8c8c8",
    "sysvmq_into": "#3f7fd9",
    "batch_floor": "#dedede",
    "sysvmq_many": "#8cb8f0",
    "sysvmq_many_messages": "#a6c8f4",
    "sysvmq_many_lengths": "#5b97e4",
}


def _bars(ax: Any, rows: List[Row], order: Tuple[str, ...], ylabel: str) -> None:
    sizes = sorted({size for size, *_ in rows})
    impls = [impl for impl in order if any(r[1] == impl for r in rows)]
    width = 0.85 / max(len(impls), 1)
    ratio = {(size, impl): by_c for size, impl, _, by_c, _ in rows}
    for i, impl in enumerate(impls):
        xs = [x + (i - (len(impls) - 1) / 2) * width for x in range(len(sizes))]
        heights = [ratio.get((size, impl)) or 0.0 for size in sizes]
        ax.bar(xs, heights, width, color=COLOURS.get(impl, "#999999"), edgecolor="white", linewidth=0.4, label=impl)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{size} B" for size in sizes])
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def figure(paths: List[str]) -> Any:
    """The ratio tables of each file as bar charts: a row per file, round trips left, two processes right.

    Bars are the tables' "/ C" column: time per message over the C loop's for
    round trips (lower is better), messages per second over the C loop's for
    two processes (higher is better). Returns the matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(paths), 2, figsize=(11, 3.3 * len(paths)), dpi=80, squeeze=False)
    for (left, right), path in zip(axes, paths):
        where, t, _ = _load(path)
        round_trip, two_process = tables(t)
        _bars(left, round_trip, ROUND_TRIP_ROWS, "time per message / C\n(lower is better)")
        left.set_title(f"{where.split(' on ')[0]}: round trip in one process", fontsize=10)
        _bars(right, two_process, TWO_PROCESS_ROWS, "messages/s / C\n(higher is better)")
        right.set_title(f"{where.split(' on ')[0]}: producer and consumer processes", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    rows = -(-len(labels) // 7)  # at most 7 a row: the page's width
    fig.legend(handles, labels, loc="lower center", ncol=-(-len(labels) // rows), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.03 + 0.025 * rows, 1, 1))
    return fig


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--plot", metavar="FILE.png", help="also draw the ratios to FILE.png (needs matplotlib)")
    parser.add_argument("files", nargs="+", metavar="JSON", help="pytest-benchmark --benchmark-json files")
    args = parser.parse_args(argv)
    for path in args.files:
        print("\n".join(report(path)))
    if args.plot:
        fig = figure(args.files)
        fig.savefig(args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
