"""The suite's reaper: queues a run made are removed even when the run is cut short."""

import os
import subprocess
import sys

from support import exists, note_created, remove, wait_until

from sysvmq import SysVMQ

CUT_SHORT = """
import os, sys
sys.path.insert(0, sys.argv[1])
import support, sysvmq
support.start_reaper()
q = support.register(sysvmq.SysVMQ.private())
print(q.id, flush=True)
if sys.argv[2] == "done":
    q.destroy()
    support.stop_reaper()
    other = sysvmq.SysVMQ.private()  # made after: not the suite's to remove
    print(other.id, flush=True)
sys.stdout.close()
os._exit(1)  # as pytest-timeout ends a hung run: no cleanup
"""
HERE = os.path.dirname(os.path.abspath(__file__))


def test_a_queue_a_run_cut_short_left_is_removed() -> None:
    proc = subprocess.run([sys.executable, "-c", CUT_SHORT, HERE, "cut"], capture_output=True, text=True, timeout=60)
    msqid = int(proc.stdout.split()[0])
    note_created(msqid)  # this session removes it if the reaper does not
    wait_until(lambda: not exists(msqid), "the reaper removed it")


def test_a_run_that_cleaned_up_has_its_reaper_remove_nothing() -> None:
    proc = subprocess.run([sys.executable, "-c", CUT_SHORT, HERE, "done"], capture_output=True, text=True, timeout=60)
    first, other = (int(x) for x in proc.stdout.split())
    note_created(other)
    try:
        assert not exists(first)
        assert exists(other)
        assert "removed queue" not in proc.stderr
    finally:
        remove(SysVMQ.attach(other))
