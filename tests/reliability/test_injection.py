"""Fault injection: the queue removed under batch calls in 8 threads, and kernel.msgmni exhausted.

Removal: a child process runs 4 threads of send_many and 4 of receive_many on
one queue. At a random moment the test stops the child (SIGSTOP, so that what
the queue holds stands still), takes every message left, removes the queue and
lets the child go on. Each thread's calls must then end, with their results or
with QueueRemoved, within a bound; and every message the senders say they
queued (returns and ``exc.count``) must be received once (returns and
``exc.received``) or have been left in the queue, and nothing else.
"""

import errno
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Tuple

import pytest
from harness import check

import sysvmq
from sysvmq import SysVMQ

ROUNDS = 20  # at least; more until removals have cut CUTS send_many calls mid-batch, up to MAX_ROUNDS
CUTS = 5
MAX_ROUNDS = 200
SENDERS = RECEIVERS = 4
BOUND = 2.0  # seconds from the child's release to the end of its last call

WORKERS = r"""
import json, random, sys, threading, time, traceback
sys.path.insert(0, sys.argv[2])
from harness import check, make
import sysvmq

q = sysvmq.SysVMQ.attach(int(sys.argv[1]))
SENDERS = RECEIVERS = 4
sent = [[] for _ in range(SENDERS)]      # (producer, seq) the kernel queued, as the calls said
received = [[] for _ in range(RECEIVERS)]
ends = {}                               # thread -> monotonic time its last call ended
cut = {"send_many": 0}                 # QueueRemoved that ended a send_many after it had queued some
errors = []
started = threading.Barrier(SENDERS + RECEIVERS + 1)

def sender(t):
    rng = random.Random(t)
    seq = 0
    pending = []
    started.wait()
    try:
        while True:
            while len(pending) < rng.randint(1, 24):
                pending.append((seq, make(t, seq, rng, 300)))
                seq += 1
            mode = rng.choice([{}, {"timeout": 0.05}, {"block": False}])
            try:
                n = q.send_many([m for _, m in pending], rng.randint(1, 4), **mode)
            except sysvmq.QueueRemoved as exc:
                sent[t].extend((t, s) for s, _ in pending[: exc.count])
                cut["send_many"] += exc.count > 0
                return
            except sysvmq.QueueFull as exc:
                n = exc.count
            sent[t].extend((t, s) for s, _ in pending[:n])
            del pending[:n]
    except BaseException as exc:
        errors.append(traceback.format_exc())  # where, should one ever come
    finally:
        ends[f"sender {t}"] = time.monotonic()

def receiver(t):
    rng = random.Random(100 + t)
    started.wait()
    try:
        while True:
            mode = rng.choice([{}, {"timeout": 0.05}, {"block": False}])
            typed = rng.random() < 0.5
            mtype = rng.choice([0, -4, -2])
            try:
                if typed:
                    got = [m.data for m in q.receive_many_messages(rng.randint(1, 64), mtype, **mode)]
                else:
                    got = q.receive_many(rng.randint(1, 64), mtype, **mode)
            except sysvmq.QueueRemoved as exc:
                # A batch the removal cut short is returned, not raised: received is [] here.
                received[t].extend(check(m.data) for m in exc.received)
                return
            except sysvmq.QueueEmpty as exc:
                got = [m.data for m in exc.received]
            received[t].extend(check(d) for d in got)
    except BaseException as exc:
        errors.append(traceback.format_exc())  # where, should one ever come
    finally:
        ends[f"receiver {t}"] = time.monotonic()

threads = [threading.Thread(target=sender, args=(t,)) for t in range(SENDERS)]
threads += [threading.Thread(target=receiver, args=(t,)) for t in range(RECEIVERS)]
for th in threads:
    th.start()
started.wait()
print("running", flush=True)
for th in threads:
    th.join()
print(json.dumps({"sent": sent, "received": received, "ends": ends, "cut": cut, "errors": errors}))
"""


def _drain(q: SysVMQ) -> List[Tuple[int, int]]:
    left: List[Tuple[int, int]] = []
    while True:
        try:
            left.extend(check(d) for d in q.receive_many(1024, block=False))
        except sysvmq.QueueEmpty:
            return left


def test_removal_under_batches_in_8_threads_loses_and_invents_nothing(
    make_queue: Callable[..., SysVMQ], figures: Dict[str, object]
) -> None:
    rng = random.Random()
    here = str(pathlib.Path(__file__).parent)
    totals = {"sent": 0, "received": 0, "left": 0, "cut_sends": 0}
    slowest = 0.0
    rounds = 0
    while rounds < ROUNDS or (totals["cut_sends"] < CUTS and rounds < MAX_ROUNDS):
        rounds += 1
        q = make_queue()
        q.update(max_size=4096)  # full most of the time: senders wait in msgsnd, part of a batch queued
        child = subprocess.Popen(
            [sys.executable, "-c", WORKERS, str(q.id), here], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "running\n", child.stderr.read() if child.stderr else ""
            time.sleep(rng.uniform(0, 0.2))  # a random moment in the run, not a stand-in for an event
            os.kill(child.pid, signal.SIGSTOP)
            _, status = os.waitpid(child.pid, os.WUNTRACED)  # every thread of it has stopped
            assert os.WIFSTOPPED(status)
            left = _drain(q)
            q.destroy()
            released = time.monotonic()
            os.kill(child.pid, signal.SIGCONT)
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 0, err
        report = json.loads(out)
        assert report["errors"] == [], "\n".join(report["errors"])
        sent = [tuple(m) for per in report["sent"] for m in per]
        received = [tuple(m) for per in report["received"] for m in per]
        assert len(set(sent)) == len(sent), "a message counted as sent twice"
        taken = received + left
        assert len(set(taken)) == len(taken), "a message received twice, or received and left"
        assert set(taken) == set(sent), (
            f"{len(set(sent) - set(taken))} sent but never seen (count too high), "
            f"{len(set(taken) - set(sent))} seen but not counted as sent (count too low)"
        )
        assert len(report["ends"]) == SENDERS + RECEIVERS
        last = max(report["ends"].values()) - released
        assert last < BOUND, f"a call ended {last:.3f} s after the removal"
        slowest = max(slowest, last)
        totals["sent"] += len(sent)
        totals["received"] += len(received)
        totals["left"] += len(left)
        totals["cut_sends"] += report["cut"]["send_many"]
    figures.update(rounds=rounds, **totals, slowest_end_ms=round(slowest * 1e3, 1))
    # The test proves something only if removals cut calls that had moved messages.
    assert totals["cut_sends"] >= CUTS, f"in {rounds} rounds, removals cut only {totals['cut_sends']} send_many"


# -- kernel.msgmni, in a private IPC namespace -----------------------------------

MSGMNI = 8

EXHAUST = """
import json, sys
import sysvmq
from sysvmq import SysVMQ

with open("/proc/sys/kernel/msgmni", "w") as f:  # this namespace's own sysctl
    f.write(sys.argv[1])
made, error = [], None
while len(made) <= int(sys.argv[1]):
    try:
        made.append(SysVMQ.private())
    except sysvmq.SysVMQError as exc:
        error = [type(exc).__name__, exc.errno, str(exc)]
        break
ids = [q.id for q in made]
usage_full = sysvmq.usage().queues
for q in made:
    q.destroy()
gone = []
for i in ids:
    try:
        SysVMQ.attach(i)
    except sysvmq.QueueNotFound:
        gone.append(i)
again = SysVMQ.private()  # with room again, a queue can be made
again.destroy()
print(json.dumps({"ids": ids, "error": error, "usage_full": usage_full, "gone": gone,
                  "usage_after": sysvmq.usage().queues}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a private IPC namespace needs root")
def test_msgmni_exhausted_names_the_limit_and_leaks_nothing(figures: Dict[str, object]) -> None:
    proc = subprocess.run(
        ["unshare", "--ipc", sys.executable, "-c", EXHAUST, str(MSGMNI)], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"no private IPC namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["ids"]) == MSGMNI, out
    name, err, message = out["error"]
    assert (name, err) == ("SysVMQError", errno.ENOSPC)
    assert f"kernel.msgmni ({MSGMNI}) queues exist already" in message
    assert out["usage_full"] == MSGMNI
    assert sorted(out["gone"]) == sorted(out["ids"]), "a queue made survived its removal"
    assert out["usage_after"] == 0
    figures.update(queues_made=len(out["ids"]), error=message)
