"""Leaks: a million send/receive cycles, and 100,000 of each error path, in a fresh interpreter."""

import json
import platform
from typing import Dict

from support import run_python

LEAK_CHILD = """
import gc, json, os, sys
sys.path.insert(0, sys.argv[1])
from harness import rss_bytes
import sysvmq

q = sysvmq.SysVMQ.private()
msgmax = sysvmq.limits().msgmax
try:
    msg, big, buf = b"m" * 64, b"b" * (msgmax + 1), bytearray(64)

    def cycles(n):
        for _ in range(n):
            q.send(msg)
            q.receive()
            q.send(msg)
            q.receive_into(buf)

    def errors(n):
        for _ in range(n):
            try:
                q.receive(block=False)
            except sysvmq.QueueEmpty:
                pass
            try:
                q.send(big)
            except sysvmq.MessageTooLarge:
                pass
            try:
                q.send(42)
            except TypeError:
                pass
        q.update(max_size=64)
        q.send(msg)
        for _ in range(n):
            try:
                q.send(msg, block=False)
            except sysvmq.QueueFull:
                pass
        q.receive()
        q.update(max_size=16384)

    def settled():
        gc.collect()
        return rss_bytes()

    cycles(200_000)
    errors(20_000)  # warm-up: the JIT, the allocator, the caches
    start = settled()
    cycles(int(sys.argv[2]) // 2)
    after_cycles = settled()
    errors(int(sys.argv[3]))
    after_errors = settled()
    out = {"start": start, "after_cycles": after_cycles, "after_errors": after_errors}
    if sys.implementation.name == "cpython":
        import tracemalloc
        tracemalloc.start()
        cycles(10_000)
        errors(1_000)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        cycles(100_000)
        errors(10_000)
        gc.collect()
        out["traced_growth"] = tracemalloc.get_traced_memory()[0] - before
    print(json.dumps(out))
finally:
    q.destroy()
"""

MIB = 1 << 20


def test_no_growth_over_a_million_cycles_and_the_error_paths(figures: Dict[str, object]) -> None:
    import pathlib

    here = str(pathlib.Path(__file__).parent)
    out = json.loads(run_python(LEAK_CHILD, here, "1000000", "100000", timeout=600).stdout)
    cycles_growth = out["after_cycles"] - out["start"]
    errors_growth = out["after_errors"] - out["after_cycles"]
    figures.update(
        interpreter=platform.python_implementation(),
        rss_growth_over_1M_cycles_kib=cycles_growth // 1024,
        rss_growth_over_100k_of_each_error_kib=errors_growth // 1024,
    )
    assert cycles_growth < MIB, f"RSS grew {cycles_growth / MIB:.2f} MiB over 1,000,000 send/receive cycles"
    assert errors_growth < MIB, f"RSS grew {errors_growth / MIB:.2f} MiB over 100,000 of each error path"
    if "traced_growth" in out:
        figures["tracemalloc_growth_bytes_over_100k_cycles"] = out["traced_growth"]
        # Allocations that outlive a cycle would add up to megabytes here.
        assert out["traced_growth"] < 64 * 1024, f"tracemalloc: {out['traced_growth']} bytes kept over 100,000 cycles"
