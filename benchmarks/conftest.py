"""Benchmark fixtures: a private queue per benchmark, removed afterwards."""

import contextlib
from typing import Iterator

import pytest

import sysvmq


@pytest.fixture
def queue() -> Iterator[sysvmq.SysVMQ]:
    q = sysvmq.SysVMQ.private()
    yield q
    with contextlib.suppress(sysvmq.QueueRemoved):
        q.destroy()
