"""``python -m sysvmq demo``: two processes talk through a private queue, with figures.

Whatever ends it (Ctrl-C, SIGTERM, SIGHUP, a reader of its output that goes
away, a worker that dies), the worker is ended and the queue removed (see _procs).
"""

import multiprocessing
import os
import statistics
import time
from typing import Callable, List

from . import SysVMQ
from ._procs import Signals, Workers, private_queue

# One queue carries both directions; message types keep them apart. The worker
# takes the lowest type <= WORKER_TYPES first (type=-WORKER_TYPES), so a STOP
# queued behind data is read after it; the parent takes only REPLY.
REQUEST, DATA, STOP = 1, 2, 3
WORKER_TYPES = 8
REPLY = 9


def _worker(q: SysVMQ) -> None:
    received = nbytes = 0
    while True:
        data, mtype = q.receive_message(type=-WORKER_TYPES)
        if mtype == REQUEST:
            q.send(f"{data.decode()} -> pong from pid {os.getpid()}", REPLY)
        elif mtype == DATA:
            received += 1
            nbytes += len(data)
        else:
            q.send(f"{received} {nbytes}", REPLY)
            return


def run(say: Callable[[str], None], messages: int = 100_000, size: int = 64, pings: int = 5_000) -> None:
    """Create a private queue, start a worker process, exchange messages both ways, report, remove.

    The parent's waits need no timeout: a worker that dies interrupts them (WorkerFailed).

    Raises:
        Stopped: SIGINT, SIGTERM or SIGHUP (the worker is ended, the queue removed).
        WorkerFailed: the worker died or failed.
    """
    ctx = multiprocessing.get_context("spawn")  # the handle travels pickled, as under any start method
    with Signals() as signals, private_queue(signals) as q, Workers(ctx, q, signals) as workers:
        say(f"created private queue id {q.id}; starting a worker process\n")
        worker = workers.start("worker", _worker)
        say(f"\n1. requests (type {REQUEST}) from pid {os.getpid()}, replies (type {REPLY}) from the worker:\n")
        for n in range(1, 4):
            q.send(f"ping {n}", REQUEST)
            say(f"   {q.receive(REPLY).decode()}\n")

        say(f"\n2. one-way stream: {messages:,} messages of {size} bytes (type {DATA})\n")
        payload = os.urandom(size)
        start = time.perf_counter()
        for _ in range(messages):
            q.send(payload, DATA)
        q.send(b"", STOP)
        got, nbytes = map(int, q.receive(REPLY).split())
        elapsed = time.perf_counter() - start
        worker.receive()
        say(f"   the worker received {got:,} messages, {nbytes:,} bytes, in {elapsed:.3f} s\n")
        say(f"   {got / elapsed:,.0f} messages/s, {nbytes / elapsed / 1e6:.1f} MB/s\n")

        worker = workers.start("worker", _worker)
        q.send(b"warm-up", REQUEST)
        q.receive(REPLY)
        say(f"\n3. round trips: {pings:,} request/reply pairs\n")
        times: List[float] = []
        for _ in range(pings):
            t0 = time.perf_counter()
            q.send(b"x", REQUEST)
            q.receive(REPLY)
            times.append(time.perf_counter() - t0)
        times.sort()
        p99 = times[int(len(times) * 0.99)]
        say(f"   median {statistics.median(times) * 1e6:.1f} us, p99 {p99 * 1e6:.1f} us per round trip\n")
        q.send(b"", STOP)
        q.receive(REPLY)
        worker.receive()

        st = q.stats()
        say(
            f"\nqueue {st.id} now: {st.count} messages, {st.size} bytes queued (max {st.max_size}); "
            f"last send by pid {st.last_send_pid}, last receive by pid {st.last_receive_pid}\n"
        )
    say(f"removed queue {q.id}\n")


def run_asyncio(say: Callable[[str], None], messages: int = 100_000, size: int = 64, pings: int = 5_000) -> None:
    """The same exchange, with the parent's side in asyncio tasks (sysvmq.asyncio), and the loop's
    other work counted while they wait: the queue's waits never stop the event loop."""
    import asyncio

    from . import asyncio as sysvmq_asyncio

    ctx = multiprocessing.get_context("spawn")
    with Signals() as signals, private_queue(signals) as sync_q, Workers(ctx, sync_q, signals) as workers:
        q = sysvmq_asyncio.SysVMQ.from_sync(sync_q)
        say(f"created private queue id {q.id}; starting a worker process; the parent runs asyncio tasks\n")

        async def exchange() -> None:
            ticks = 0

            async def heartbeat() -> None:  # the loop's other work: it goes on while the queue's calls wait
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.001)
                    ticks += 1

            beat = asyncio.ensure_future(heartbeat())
            try:
                worker = workers.start("worker", _worker)
                say(f"\n1. requests (type {REQUEST}) from one task, replies (type {REPLY}) awaited by another:\n")

                async def ask() -> None:
                    for n in range(1, 4):
                        await q.send(f"ping {n}", REQUEST)

                async def listen() -> List[bytes]:
                    return [await q.receive(REPLY) for _ in range(3)]

                _, replies = await asyncio.gather(ask(), listen())
                for reply in replies:
                    say(f"   {reply.decode()}\n")

                say(f"\n2. one-way stream: {messages:,} messages of {size} bytes (type {DATA}), in batches\n")
                payload = os.urandom(size)
                start = time.perf_counter()
                batch = [payload] * 64
                for done in range(0, messages, 64):
                    await q.send_many(batch[: min(64, messages - done)], DATA)
                await q.send(b"", STOP)
                got, nbytes = map(int, (await q.receive(REPLY)).split())
                elapsed = time.perf_counter() - start
                worker.receive()
                say(f"   the worker received {got:,} messages, {nbytes:,} bytes, in {elapsed:.3f} s\n")
                say(f"   {got / elapsed:,.0f} messages/s, {nbytes / elapsed / 1e6:.1f} MB/s\n")

                worker = workers.start("worker", _worker)
                await q.send(b"warm-up", REQUEST)
                await q.receive(REPLY)
                say(f"\n3. round trips: {pings:,} request/reply pairs, each reply awaited\n")
                times: List[float] = []
                before = ticks
                for _ in range(pings):
                    t0 = time.perf_counter()
                    await q.send(b"x", REQUEST)
                    await q.receive(REPLY)
                    times.append(time.perf_counter() - t0)
                times.sort()
                p99 = times[int(len(times) * 0.99)]
                say(f"   median {statistics.median(times) * 1e6:.1f} us, p99 {p99 * 1e6:.1f} us per round trip\n")
                await q.send(b"", STOP)
                await q.receive(REPLY)
                worker.receive()
                say(f"   meanwhile the event loop ran its other task {ticks - before:,} times\n")
            finally:
                beat.cancel()

        asyncio.run(exchange())
        st = q.stats()
        say(
            f"\nqueue {st.id} now: {st.count} messages, {st.size} bytes queued (max {st.max_size}); "
            f"last send by pid {st.last_send_pid}, last receive by pid {st.last_receive_pid}\n"
        )
    say(f"removed queue {q.id}\n")
