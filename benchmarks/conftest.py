"""Benchmark fixtures: a private queue per benchmark, the C floor, and sysv_ipc when installed."""

import contextlib
import pathlib
from typing import Any, Iterator

import pytest
from cloop import build

import sysvmq


@pytest.fixture
def queue() -> Iterator[sysvmq.SysVMQ]:
    q = sysvmq.SysVMQ.private()
    yield q
    with contextlib.suppress(sysvmq.QueueRemoved):
        q.destroy()


@pytest.fixture(scope="session")
def cloop(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The compiled C loops' ``lib``."""
    return build(pathlib.Path(tmp_path_factory.mktemp("cloop"))).lib


@pytest.fixture
def sysv_ipc_queue() -> Iterator[Any]:
    """A private sysv_ipc.MessageQueue taking messages up to msgmax (the `bench` extra installs sysv_ipc)."""
    sysv_ipc = pytest.importorskip("sysv_ipc")
    mq = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX, max_message_size=sysvmq.limits().msgmax)
    yield mq
    with contextlib.suppress(sysv_ipc.ExistentialError):
        mq.remove()
