"""The pictures: ``sysvmq bench --plot`` and ``benchmarks/report.py --plot``, checked by what they draw."""

import importlib.util
import json
import pathlib
import subprocess
import sys
import textwrap
from typing import Any, Dict, List

import pytest
from opsupport import run

REPORT = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "report.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed (the bench extra; it may have no build for this interpreter)",
)


def _png_size(path: str) -> "tuple[int, int]":
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_MAGIC, "not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@needs_matplotlib
def test_bench_plot_writes_a_png_and_keeps_the_json_as_it_was(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "latency.png")
    proc = run("bench", "--messages", "2000", "--rate", "2000", "--json", "--plot", path, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    fields = {"size", "producers", "consumers", "queue_max_bytes", "throughput", "latency"}
    assert set(json.loads(proc.stdout)) == fields  # the samples went to the plot, not into the JSON
    assert _png_size(path) == (800, 420)


@needs_matplotlib
def test_the_latency_figure_draws_every_sample_and_the_percentiles() -> None:
    from sysvmq import _plot

    samples = sorted([5_000] * 90 + [20_000] * 9 + [900_000])  # ns
    result = {
        "producers": 1,
        "consumers": 2,
        "latency": {
            "rate": 100,
            "messages": 100,
            "message_bytes": 8,
            "p50_us": 5.0,
            "p99_us": 20.0,
            "p999_us": 900.0,
            "max_us": 900.0,
        },
    }
    fig = _plot.latency_figure(result, samples)
    try:
        (ax,) = fig.axes
        assert sum(patch.get_height() for patch in ax.patches) == len(samples)  # every sample in a bar
        assert [line.get_xdata()[0] for line in ax.get_lines()] == [5.0, 20.0, 900.0, 900.0]
        assert "1 producer, 2 consumers" in ax.get_title()
        assert ax.get_xscale() == "log"
    finally:
        _plot.pyplot().close(fig)


def test_bench_plot_without_matplotlib_says_how_to_install_it_before_running() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["matplotlib"] = None  # as where it is not installed
        from sysvmq import _bench
        from sysvmq._cli import main
        def refuse(**kwargs):
            raise AssertionError("the benchmark ran")
        _bench.run = refuse
        sys.exit(main(["bench", "--plot", "never.png"]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == "sysvmq bench: --plot needs matplotlib: pip install matplotlib (or 'sysvmq[bench]')\n"


def _benchmark_json(path: pathlib.Path, impl_seconds: Dict[str, float], implementation: str) -> None:
    """A pytest-benchmark JSON with the fields report.py reads: round trips at 16 B, two processes at 16 B."""
    benchmarks: List[Dict[str, Any]] = []
    for impl, seconds in impl_seconds.items():
        for case in ("roundtrip", "two processes"):
            extra = {"case": case, "size": 16, "impl": impl, "messages": 64}
            benchmarks.append({"name": f"{case}-{impl}", "extra_info": extra, "stats": {"median": seconds}})
    info = {"python_implementation": implementation, "python_version": "3.11.7", "cpu": {"brand_raw": "AMD EPYC"}}
    path.write_text(json.dumps({"machine_info": info, "datetime": "2026-11-30T00:00:00", "benchmarks": benchmarks}))


def _report_module() -> Any:
    spec = importlib.util.spec_from_file_location("report", REPORT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_matplotlib
def test_report_plot_draws_the_ratio_tables(tmp_path: pathlib.Path) -> None:
    # Per 64 messages: C 64 us, sysv_ipc 96 us, sysvmq 128 us.
    cpython, pypy = tmp_path / "cpython.json", tmp_path / "pypy.json"
    _benchmark_json(cpython, {"c": 64e-6, "sysv_ipc": 96e-6, "sysvmq": 128e-6}, "CPython")
    _benchmark_json(pypy, {"c": 64e-6, "sysvmq": 80e-6}, "PyPy")
    out = tmp_path / "ratios.png"
    proc = subprocess.run(
        [sys.executable, str(REPORT), "--plot", str(out), str(cpython), str(pypy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| 16 | sysvmq | 2,000 | 2.00x | 1.33x |" in proc.stdout  # the tables print as before
    assert _png_size(str(out))[0] > 0

    report = _report_module()
    fig = report.figure([str(cpython), str(pypy)])
    try:
        (rt_cpython, tp_cpython), (rt_pypy, tp_pypy) = [fig.axes[i : i + 2] for i in (0, 2)]
        # The bars are the tables' "/ C" column: time ratios left, throughput ratios right.
        assert [round(p.get_height(), 3) for p in rt_cpython.patches] == [1.0, 1.5, 2.0]
        assert [round(p.get_height(), 3) for p in tp_cpython.patches] == [1.0, 0.667, 0.5]
        assert [round(p.get_height(), 3) for p in rt_pypy.patches] == [1.0, 1.25]
        assert [round(p.get_height(), 3) for p in tp_pypy.patches] == [1.0, 0.8]
        assert rt_cpython.get_title().startswith("CPython 3.11.7") and rt_pypy.get_title().startswith("PyPy 3.11.7")
    finally:
        import matplotlib.pyplot

        matplotlib.pyplot.close(fig)
