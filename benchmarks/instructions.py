"""Instructions per message, counted by valgrind's callgrind: a profile that noise cannot move.

    python benchmarks/instructions.py [size [row ...]]

Timings on a shared machine wander by 10%; instruction counts of the same
binary and inputs do not. Each row is the round-trip benchmark of the same
name (``test_roundtrip.IMPLS``, the C rows left out), run under ``valgrind
--tool=callgrind`` twice, for 16 and 176 of its calls (LOOP messages each); the
difference divided by the messages between them is what one more message
costs in user space, start-up excluded. The kernel's share (the system calls
themselves) is the same for every row and is not counted. Needs valgrind
(Debian: ``apt-get install valgrind``) and, for its row, sysv_ipc.
"""

import os
import subprocess
import sys
from typing import List, Optional

from report import ROUND_TRIP_ROWS
from shapes import messages_per_call

_CALLS = (16, 176)  # benchmark calls in the short and the long run
_C_ROWS = {"c", "c_copies"}  # one call into C with no Python in the loop: nothing to count

# Run one row's benchmark function a given number of times, as the benchmark does.
_PROGRAM = """
import sys
import sysvmq
from test_roundtrip import IMPLS

name, calls, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
q, mq = sysvmq.SysVMQ.private(), None
try:
    if name == "sysv_ipc":
        import sysv_ipc
        mq = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX, max_message_size=sysvmq.limits().msgmax)
    run = IMPLS[name](q, size, None, mq)
    for _ in range(calls):
        run()
finally:
    q.destroy()
    if mq is not None:
        mq.remove()
"""


def _count(name: str, calls: int, size: int) -> Optional[int]:
    """Instructions callgrind counted for the whole program, or None if it failed."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=here)  # the same dict layouts every run
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    done = subprocess.run(
        [*valgrind, sys.executable, "-c", _PROGRAM, name, str(calls), str(size)],
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
    rows = argv[1:] or [name for name in ROUND_TRIP_ROWS if name not in _C_ROWS]
    print(f"{sys.implementation.name} {sys.version.split()[0]}, {size}-byte messages: instructions per message")
    for name in rows:
        low, high = (_count(name, calls, size) for calls in _CALLS)
        messages = (_CALLS[1] - _CALLS[0]) * messages_per_call(name, size)
        figure = f"{(high - low) / messages:,.0f}" if low is not None and high is not None else "failed"
        print(f"  {name:16} {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
