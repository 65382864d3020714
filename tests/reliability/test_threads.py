"""Threads sharing one handle, and a handle used on both sides of a fork."""

import os
import random
import threading
from typing import Dict, List

import pytest
from harness import check, make

from sysvmq import SysVMQ

THREADS = 8
PER_THREAD = 5_000


@pytest.mark.parametrize("into", [False, True], ids=["receive", "receive_into"])
def test_threads_share_one_handle(queue: SysVMQ, into: bool, figures: Dict[str, object]) -> None:
    # Thread t sends type t+1 and receives the type the next thread sends.
    received: List[List[int]] = [[] for _ in range(THREADS)]
    errors: List[BaseException] = []

    def work(t: int) -> None:
        try:
            rng = random.Random(t)
            want = (t + 1) % THREADS + 1
            buf = bytearray(8192)
            for seq in range(PER_THREAD):
                queue.send(make(t, seq, rng, 1024), t + 1)
                if into:
                    n, mtype = queue.receive_into(buf, want, timeout=60)
                    data = bytes(buf[:n])
                else:
                    data, mtype = queue.receive_message(want, timeout=60)
                producer, got = check(data)
                assert (producer, mtype) == ((t + 1) % THREADS, want)
                received[t].append(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    figures.update(threads=THREADS, messages=THREADS * PER_THREAD, errors=len(errors))
    assert not errors, errors[:3]
    for t in range(THREADS):
        assert received[t] == list(range(PER_THREAD)), f"thread {t} lost, duplicated or reordered"
    assert queue.stats().count == 0


def test_handle_used_in_a_forked_child_and_the_parent(queue: SysVMQ, figures: Dict[str, object]) -> None:
    count = 10_000
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            rng = random.Random(1)
            for seq in range(count):
                queue.send(make(1, seq, rng, 256), 1)
                if check(queue.receive(2))[1] != seq:
                    break
            else:
                status = 0
        finally:
            os._exit(status)
    rng = random.Random(2)
    got = []
    for seq in range(count):
        queue.send(make(2, seq, rng, 256), 2)
        got.append(check(queue.receive(1, timeout=60))[1])
    _, status = os.waitpid(pid, 0)
    figures.update(messages_each_way=count)
    assert os.waitstatus_to_exitcode(status) == 0, "the child saw a gap"
    assert got == list(range(count))
