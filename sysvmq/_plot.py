"""``sysvmq bench --plot FILE.png``: the latency distribution that bench measured, drawn with matplotlib.

matplotlib comes with the ``bench`` extra and is imported only when a plot is
asked for, and checked before the benchmark runs, so a missing install costs
nothing but a message.
"""

import math
import os
from typing import Any, Dict, List

__all__ = ["INSTALL_HINT", "pyplot", "unwritable", "latency_figure", "latency"]

INSTALL_HINT = "--plot needs matplotlib: pip install matplotlib (or 'sysvmq[bench]')"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display needed).

    Raises:
        CommandError: matplotlib is not installed (the message says how to install it).
    """
    try:
        import matplotlib
    except ImportError:
        from ._cli import CommandError  # imported here: _cli imports this module

        raise CommandError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def unwritable(path: str) -> str:
    """Why ``path`` cannot take the figure (no directory, a directory, no permission, a format
    matplotlib does not write), or "" if nothing says it cannot: checked before bench runs."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"cannot write {path}: no directory {directory}"
    if os.path.isdir(path):
        return f"cannot write {path}: it is a directory"
    if not os.access(path if os.path.lexists(path) else directory, os.W_OK):  # EROFS too (access(2))
        return f"cannot write {path}: permission denied"
    ext = os.path.splitext(path)[1][1:].lower()
    if ext:
        pyplot()  # CommandError if matplotlib is missing
        from matplotlib.backend_bases import FigureCanvasBase

        formats = FigureCanvasBase.get_supported_filetypes()
        if ext not in formats:
            return f"cannot write {path}: matplotlib writes no .{ext} ({', '.join(sorted(formats))})"
    return ""


def _bins(low: float, high: float, count: int = 60) -> List[float]:
    # Latencies span decades (microseconds to milliseconds): bins of equal width
    # on a log axis, their edges 1% beyond the extremes, which 10 ** log10(x)
    # would otherwise miss by a rounding error, losing those samples.
    first, last = math.log10(max(low, 0.1) / 1.01), math.log10(max(high, low, 0.1) * 1.01)
    return [10 ** (first + (last - first) * i / count) for i in range(count + 1)]


def latency_figure(result: Dict[str, Any], samples_ns: List[int]) -> Any:
    """A histogram of the latency samples (log axes), with the median, p99, p99.9 and worst marked.

    Args:
        result: what ``_bench.run`` returned (for the title and the percentiles).
        samples_ns: the latencies, in nanoseconds.

    Returns:
        The matplotlib Figure; the caller saves and closes it.

    Raises:
        CommandError: matplotlib is not installed.
        ValueError: no samples.
    """
    if not samples_ns:
        raise ValueError("no latency samples to plot")
    plt = pyplot()
    micros = [ns / 1e3 for ns in samples_ns]
    lat = result["latency"]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    ax.hist(micros, bins=_bins(min(micros), max(micros)), color="#4c72b0")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency, send to receive (microseconds, log scale)")
    ax.set_ylabel("messages (log scale)")
    marks = (("median", "p50_us", "#2ca02c"), ("p99", "p99_us", "#ff7f0e"), ("p99.9", "p999_us", "#d62728"))
    for label, field, color in (*marks, ("worst", "max_us", "#444444")):
        value = lat[field]
        ax.axvline(value, color=color, linestyle="--", linewidth=1.2, label=f"{label} {value:,.0f} us")
    ax.legend(loc="upper right", fontsize=9)
    workers = f"{_count(result['producers'], 'producer')}, {_count(result['consumers'], 'consumer')}"
    sent = f"{lat['messages']:,} messages of {lat['message_bytes']} bytes sent at {lat['rate']:,}/s"
    ax.set_title(f"sysvmq bench: {sent}, {workers}", fontsize=10)
    fig.tight_layout()
    return fig


def latency(result: Dict[str, Any], samples_ns: List[int], path: str) -> None:
    """Write ``latency_figure`` to the PNG file ``path``.

    Raises:
        CommandError: matplotlib is not installed.
        ValueError: no samples.
        OSError: the file cannot be written.
    """
    fig = latency_figure(result, samples_ns)
    try:
        fig.savefig(path)
    finally:
        pyplot().close(fig)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
