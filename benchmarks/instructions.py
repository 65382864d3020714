"""Instructions per message, counted by valgrind's callgrind: a profile that noise cannot move.

    python benchmarks/instructions.py [size]

Timings on a shared machine wander by 10%; instruction counts of the same
binary and inputs do not. Each row runs one loop of round trips (send, then
receive) under ``valgrind --tool=callgrind`` twice, with 1,000 and 11,000
messages, and prints the difference divided by 10,000: what one more message
costs in user space, start-up excluded. The kernel's share (the system calls
themselves) is the same for every row and is not counted. Needs valgrind
(Debian: ``apt-get install valgrind``) and, for its row, sysv_ipc.
"""

import os
import subprocess
import sys
import tempfile
from typing import List, Optional

_LOOPS = {
    "sysv_ipc": """
import sysv_ipc
mq = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX, max_message_size=sysvmq.limits().msgmax)
send, receive = mq.send, mq.receive
try:
    for _ in range(N):
        send(message)
        receive()
finally:
    mq.remove()
""",
    "cffi_floor": """
from sysvmq import _queue
rx, text, _ = q._new_rx(0)
send, rx_, unpack, qid = _queue._c_send, _queue._c_rx, _queue._unpack, q.id
for _ in range(N):
    send(qid, 1, message, SIZE, 0)
    unpack(text, rx_(rx))
""",
    "signature_floor": """
from floors import SignatureFloor
floor = SignatureFloor(q)
send, receive = floor.send, floor.receive
for _ in range(N):
    send(message)
    receive()
""",
    "sysvmq": """
send, receive = q.send, q.receive
for _ in range(N):
    send(message)
    receive()
""",
    "into_floor": """
from floors import SignatureFloor
buf = bytearray(SIZE)
floor = SignatureFloor(q)
send, receive_into = floor.send, floor.receive_into
for _ in range(N):
    send(message)
    receive_into(buf)
""",
    "sysvmq_into": """
buf = bytearray(SIZE)
send, receive_into = q.send, q.receive_into
for _ in range(N):
    send(message)
    receive_into(buf)
""",
    "batch_floor": """
from floors import BatchFloor
k = min(64, sysvmq.limits().msgmnb // max(SIZE, 1))
batch = [message] * k
floor = BatchFloor(q, k)
send_many, receive_many = floor.send_many, floor.receive_many
for _ in range(N // k):
    send_many(batch)
    receive_many(k)
""",
    "sysvmq_many": """
k = min(64, sysvmq.limits().msgmnb // max(SIZE, 1))
batch = [message] * k
send_many, receive_many = q.send_many, q.receive_many
for _ in range(N // k):
    send_many(batch)
    receive_many(k)
""",
}

_PROGRAM = """
import sys
sys.path.insert(0, {here!r})
import sysvmq

def main(q, N, SIZE):
    message = b"x" * SIZE
{body}

q = sysvmq.SysVMQ.private()
try:
    main(q, int(sys.argv[1]), int(sys.argv[2]))
finally:
    q.destroy()
"""


def _count(script: str, n: int, size: int) -> Optional[int]:
    """Instructions callgrind counted for the whole program, or None if it failed."""
    env = dict(os.environ, PYTHONHASHSEED="0")  # the same dict layouts every run
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script, str(n), str(size)],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        return None
    for line in done.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].replace(",", "").strip())
    return None


def main(argv: List[str]) -> int:
    size = int(argv[0]) if argv else 16
    here = os.path.dirname(os.path.abspath(__file__))
    print(f"{sys.implementation.name} {sys.version.split()[0]}, {size}-byte messages: instructions per message")
    with tempfile.TemporaryDirectory() as tmp:
        for name, loop in _LOOPS.items():
            script = os.path.join(tmp, f"loop_{name}.py")  # not sysv_ipc.py, which import would find
            body = "\n".join("    " + line for line in loop.strip().splitlines())
            with open(script, "w") as f:
                f.write(_PROGRAM.format(here=here, body=body))
            low, high = _count(script, 1_000, size), _count(script, 11_000, size)
            figure = f"{(high - low) / 10_000:,.0f}" if low is not None and high is not None else "failed"
            print(f"  {name:16} {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
