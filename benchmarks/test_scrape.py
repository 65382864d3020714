"""One scrape with 1,000 queues: the kernel pass alone, ``sysvmq metrics``' text, and the exporter's response.

A scrape is one pass over the kernel's queue table (``queues()``: one
MSG_STAT_ANY per slot up to the highest in use) plus ``usage()`` and
``limits()``; these benchmarks time that with 1,000 queues of ours on top of
whatever the host has.
"""

import contextlib
from typing import Any, Callable, Iterator, List

import pytest

import sysvmq
from sysvmq import _metrics

QUEUES = 1000


@pytest.fixture(scope="module")
def thousand_queues() -> Iterator[List[int]]:
    """The ids of 1,000 private queues, one message in every tenth; all removed by id at teardown, even on failure."""
    room = sysvmq.limits().msgmni - sysvmq.usage().queues
    if room < QUEUES + 10:
        pytest.skip(f"kernel.msgmni leaves room for {room} more queues; this benchmark makes {QUEUES}")
    made: List[int] = []
    try:
        for i in range(QUEUES):
            q = sysvmq.SysVMQ.private()
            made.append(q.id)
            if i % 10 == 0:
                q.send(b"x" * i)
        yield made
    finally:
        for msqid in made:
            with contextlib.suppress(sysvmq.QueueRemoved, sysvmq.QueueNotFound):
                sysvmq.SysVMQ.attach(msqid).destroy()


def _text() -> str:
    return _metrics.render(_metrics.families(_metrics.snapshot()))


def _exporter() -> Callable[[], bytes]:
    client = pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")
    from prometheus_client import core, registry

    from sysvmq._exporter import SysVMQCollector

    reg = registry.CollectorRegistry()
    reg.register(SysVMQCollector(core))
    return lambda: client.generate_latest(reg)  # type: ignore[no-any-return]


@pytest.mark.parametrize("what", ["snapshot", "metrics", "exporter"])
def test_scrape(benchmark: Any, thousand_queues: List[int], what: str) -> None:
    scrape: Callable[[], object] = {"snapshot": _metrics.snapshot, "metrics": _text}.get(what) or _exporter()
    # Once outside the timing: every queue of ours is in it.
    got = scrape()
    if what == "snapshot":
        assert set(thousand_queues) <= {st.id for st in got.queues}  # type: ignore[attr-defined]
    else:
        shown = got.decode() if isinstance(got, bytes) else str(got)
        assert all(f'id="{msqid}"' in shown for msqid in thousand_queues)
    in_table = sysvmq.usage().queues
    benchmark.extra_info.update(case="scrape", impl=what, size=in_table, messages=1)
    benchmark(scrape)
