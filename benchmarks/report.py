"""Print the tables of ratios from pytest-benchmark JSON files.

    python -m pytest benchmarks --benchmark-enable --benchmark-json=cpython.json
    python benchmarks/report.py cpython.json [pypy.json ...]

Round trips are time per message, and their ratios are ours / baseline (lower
is better); two-process figures are messages per second, and their ratios are
ours / baseline (higher is better). Each file's ratios use only its own run.
"""

import json
import sys
from typing import Dict, List, Optional, Tuple

Key = Tuple[str, int, str]  # (case, size, impl)

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
    "into_floor",
    "sysvmq_into",
    "batch_floor",
    "sysvmq_many",
)


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


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(path: str) -> List[str]:
    where, t, extras = _load(path)
    lines = [f"### {where}", ""]
    cases = sorted({(case, size) for case, size, _ in t})
    lines += [
        "Round trip in one process, per message (send, then receive it back): time, and time ratios",
        "",
        "| size | implementation | ns/message | / C | / sysv_ipc |",
        "|---:|---|---:|---:|---:|",
    ]
    for case, size in cases:
        if case != "roundtrip":
            continue
        c, ipc = t.get((case, size, "c")), t.get((case, size, "sysv_ipc"))
        for impl in ROUND_TRIP_ROWS:
            if (case, size, impl) in t:
                mine = t[(case, size, impl)]
                lines.append(f"| {size} | {impl} | {mine * 1e9:,.0f} | {_ratio(mine, c)} | {_ratio(mine, ipc)} |")
    lines += [
        "",
        "Two processes, producer and consumer: messages per second, and throughput ratios",
        "",
        "| size | implementation | messages/s | / C | / sysv_ipc |",
        "|---:|---|---:|---:|---:|",
    ]
    for case, size in cases:
        if case != "two processes":
            continue
        c, ipc = t.get((case, size, "c")), t.get((case, size, "sysv_ipc"))
        for impl in ("c", "sysv_ipc", "signature_floor", "sysvmq", "sysvmq_many"):
            if (case, size, impl) in t:
                mine = t[(case, size, impl)]
                lines.append(f"| {size} | {impl} | {1 / mine:,.0f} | {_ratio(c, mine)} | {_ratio(ipc, mine)} |")
    if extras:
        lines += ["", "Timed waits", ""]
        for name, extra in sorted(extras.items()):
            figures = ", ".join(f"{k} {v:.2f}" for k, v in sorted(extra.items()))
            lines.append(f"- {name}: {figures}")
    return [*lines, ""]


def main(argv: List[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in argv:
        print("\n".join(report(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
