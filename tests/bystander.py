"""Run a command beside a bystander that keeps creating, changing and removing its own queues.

    python tests/bystander.py -- python -m pytest tests -m 'not slow'

The bystander is what another program on the host looks like to the test suite:
standing queues made before the command starts (private and keyed, with
messages, a mode and a max size of their own), and a churn of queues made,
filled, changed, drained and removed every few milliseconds while it runs. Every
operation checks that its queue is as the bystander left it. Exits with the
command's status if it failed, 1 if any bystander queue was touched by someone
else, 0 when the command passed and every bystander queue is intact.
"""

import argparse
import collections
import random
import subprocess
import sys
import threading
import time
from typing import Deque, Dict, List, Optional, Tuple

import sysvmq
from sysvmq import SysVMQ

KEYS = range(0x6B000000, 0x6BFFFFFF)  # far from the suite's 0x5E000000 range; a real program has its own keys
LIVE = 16  # churned queues alive at once


class Owned:
    """One of the bystander's queues, and what it must hold."""

    def __init__(self, q: SysVMQ, mode: int) -> None:
        self.q = q
        self.mode = mode
        self.max_size = q.stats().max_size
        self.messages: Deque[Tuple[bytes, int]] = collections.deque()

    def send(self, data: bytes, mtype: int) -> None:
        self.q.send(data, mtype, block=False)
        self.messages.append((data, mtype))

    def take_one(self) -> None:
        got = self.q.receive_message(block=False)
        expected = self.messages.popleft()
        if got != expected:
            raise AssertionError(f"queue {self.q.id}: took {got!r}, had sent {expected!r}")

    def change(self, rng: random.Random) -> None:
        self.mode = rng.choice([0o600, 0o640, 0o660, 0o620])
        self.max_size = rng.randrange(4096, 16384)
        self.q.update(mode=self.mode, max_size=self.max_size)

    def check(self) -> None:
        st = self.q.stats()
        size = sum(len(d) for d, _ in self.messages)
        seen = (st.mode, st.max_size, st.count, st.size)
        if seen != (self.mode, self.max_size, len(self.messages), size):
            raise AssertionError(f"queue {self.q.id} changed under us: {st}")
        for index, expected in enumerate(self.messages):
            if self.q.peek(index) != expected:
                raise AssertionError(f"queue {self.q.id}: message {index} is not what was sent")


def make(rng: random.Random) -> Owned:
    mode = rng.choice([0o600, 0o640, 0o666])
    if rng.random() < 0.5:
        return Owned(SysVMQ.private(mode=mode), mode)
    while True:
        try:
            return Owned(SysVMQ.create(rng.choice(KEYS), mode=mode, exclusive=True), mode)
        except sysvmq.QueueExists:
            continue  # someone else's key: pick another


class Bystander:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.standing: List[Owned] = []
        self.live: Deque[Owned] = collections.deque()
        self.stop = threading.Event()
        self.failure: Optional[BaseException] = None
        self.counts: Dict[str, int] = collections.Counter()

    def stand(self, n: int) -> None:
        for i in range(n):
            owned = make(self.rng)
            for j in range(3):
                owned.send(f"standing {i}.{j}".encode(), j + 1)
            self.standing.append(owned)

    def churn(self) -> None:
        try:
            while not self.stop.is_set():
                owned = make(self.rng)
                self.live.append(owned)
                self.counts["created"] += 1
                owned.send(self.rng.randbytes(self.rng.randrange(64)), 1)
                target = self.rng.choice(self.live)
                target.change(self.rng)
                self.counts["changed"] += 1
                target = self.rng.choice(self.live)
                if target.messages:
                    target.take_one()
                target.check()
                if len(self.live) > LIVE:
                    oldest = self.live.popleft()
                    oldest.check()
                    oldest.q.destroy()
                    self.counts["removed"] += 1
                time.sleep(0.002)
        except BaseException as exc:  # reported by the main thread
            self.failure = exc

    def finish(self) -> None:
        for owned in [*self.standing, *self.live]:
            try:
                owned.check()
            except BaseException as exc:
                self.failure = self.failure or exc
        for owned in [*self.standing, *self.live]:
            try:
                owned.q.destroy()
            except sysvmq.QueueRemoved as exc:
                self.failure = self.failure or exc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--standing", type=int, default=6, help="queues made before the command and kept (default 6)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give a command after --")
    seed = args.seed if args.seed is not None else time.time_ns()
    bystander = Bystander(seed)
    bystander.stand(args.standing)
    churner = threading.Thread(target=bystander.churn, daemon=True)
    churner.start()
    try:
        status = subprocess.call(command)
    finally:
        bystander.stop.set()
        churner.join()
        bystander.finish()
    c = bystander.counts
    print(
        f"bystander (seed {seed}): {c['created']} queues created, {c['changed']} changes, {c['removed']} removed "
        f"beside the command; {len(bystander.standing)} standing queues",
        "intact" if bystander.failure is None else f"TOUCHED: {bystander.failure}",
    )
    if status:
        return status
    return 0 if bystander.failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
