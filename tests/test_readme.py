"""The README's Python blocks run as pasted, and leave no queue behind."""

import json
import pathlib
import re
import subprocess
import sys
from typing import List

import pytest
from support import exists, note_created

import sysvmq
from sysvmq import SysVMQ

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)

# Runs a block as pasted into a fresh interpreter, and reports on standard error
# the id of every queue it got a handle on, so that the test can check each.
HARNESS = """
import atexit, json, sys
import sysvmq

seen = []
init = sysvmq.SysVMQ.__init__

def recording(self, *args, **kwargs):
    init(self, *args, **kwargs)
    seen.append(self.id)

sysvmq.SysVMQ.__init__ = recording
atexit.register(lambda: sys.stderr.write("ids " + json.dumps(seen) + "\\n"))
exec(compile(sys.argv[1], "README block", "exec"), {"__name__": "__main__"})
"""


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_each_python_block_runs_as_pasted_and_leaves_no_queue(block: str, free_key: int) -> None:
    # 0xDEADC0DE may be another program's queue on this host: the block runs on a key free for the test.
    code = re.sub(r"0x[dD][eE][aA][dD][cC]0[dD][eE]", f"{free_key:#x}", block)
    proc = subprocess.run([sys.executable, "-c", HARNESS, code], capture_output=True, text=True, timeout=60)
    ids: List[int] = json.loads(proc.stderr.splitlines()[-1].split(" ", 1)[1])
    for msqid in ids:  # removed by the session's check if the block left them
        note_created(msqid)
    assert proc.returncode == 0, proc.stderr
    assert not [msqid for msqid in ids if exists(msqid)]
    with pytest.raises(sysvmq.QueueNotFound):
        SysVMQ.open(free_key)


def test_queue_stats_show_the_mode_in_octal(queue: SysVMQ) -> None:
    queue.update(mode=0o640)
    shown = repr(queue.stats())
    assert "mode=0o640" in shown
    assert eval(shown, {"QueueStats": sysvmq.QueueStats}) == queue.stats()  # and it reads back
