"""The C boundary's build: the cdef of <sys/msg.h> and of sysvmq's C helpers.

cffi's setuptools hook imports this file and compiles ``ffibuilder`` into
``sysvmq._sysvmq_cffi`` (API mode, out of line). Every struct layout and
constant of the system headers is left for the C compiler to fill in
(``...``). The helpers live in ``sysvmq/_helpers.c``; their declarations are
read from ``sysvmq/_helpers.h``, between its "cdef" markers, so that they are
written once.
"""

import pathlib
import re
import sys

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
HEADER = HERE / "sysvmq" / "_helpers.h"

SYSTEM = r"""
typedef int... key_t;
typedef int... uid_t;
typedef int... gid_t;
typedef int... mode_t;
typedef int... pid_t;
typedef int... time_t;
typedef int... msgqnum_t;
typedef int... msglen_t;

#define IPC_PRIVATE ...
#define IPC_CREAT ...
#define IPC_EXCL ...
#define IPC_NOWAIT ...
#define IPC_RMID ...
#define IPC_SET ...
#define IPC_STAT ...
#define MSG_NOERROR ...

/* Linux only: 0 elsewhere, with the matching HAS_ flag false (_helpers.h). */
#define IPC_INFO ...
#define MSG_INFO ...
#define MSG_STAT ...
#define MSG_STAT_ANY ...
#define MSG_EXCEPT ...
#define MSG_COPY ...
#define HAS_IPC_INFO ...
#define HAS_MSG_INFO ...
#define HAS_MSG_STAT ...
#define HAS_MSG_STAT_ANY ...
#define HAS_MSG_EXCEPT ...
#define HAS_MSG_COPY ...

#define SYSVMQ_SEND ...
#define SYSVMQ_RECEIVE ...
#define SYSVMQ_RECEIVE_MANY ...
#define SYSVMQ_HEADROOM ...
#define SYSVMQ_FMT_ITEM ...
#define SYSVMQ_FEW ...
#define SYSVMQ_WATCH_NONE ...
#define SYSVMQ_WATCH_READY ...
#define SYSVMQ_WATCH_TAKEN ...
#define SYSVMQ_WATCH_ERROR ...
#define SYSVMQ_WATCH_POLL ...
#define SYSVMQ_WATCH_LOST ...
#define SYSVMQ_WATCH_IDLE ...
#define SYSVMQ_WATCH_SLICE ...

/* The POSIX fields; the key and the byte count differ by platform (helpers). */
struct ipc_perm {
    uid_t uid;
    gid_t gid;
    uid_t cuid;
    gid_t cgid;
    mode_t mode;
    ...;
};

struct msqid_ds {
    struct ipc_perm msg_perm;
    msgqnum_t msg_qnum;
    msglen_t msg_qbytes;
    pid_t msg_lspid;
    pid_t msg_lrpid;
    time_t msg_stime;
    time_t msg_rtime;
    time_t msg_ctime;
    ...;
};

/* asyncio's watchers: allocated by Python, its fields C's alone. */
struct sysvmq_watch {
    ...;
};

int msgget(key_t key, int msgflg);
int msgctl(int msqid, int cmd, struct msqid_ds *buf);
"""


def helpers_cdef(header: pathlib.Path = HEADER) -> str:
    """The declarations between the header's ``/* cdef: begin */`` and ``/* cdef: end */``."""
    found = re.search(r"/\* cdef: begin \*/(.*)/\* cdef: end \*/", header.read_text(), re.S)
    if found is None:
        raise RuntimeError(f"{header}: no cdef markers")
    return found.group(1)


# The compiler's inputs besides the generated C (paths relative to this file's
# folder); .ci/cross_compile.py compiles with the same for every platform.
SOURCES = ["sysvmq/_helpers.c"]
INCLUDE_DIRS = ["sysvmq"]
# On the command line, so before any header: the generated C includes pyconfig.h
# first of all, and glibc settles at its first header whether it shows the Linux
# names (struct msgbuf, struct msginfo); a #define in the source would come too late.
DEFINE_MACROS = [("_GNU_SOURCE", "1")]

ffibuilder = FFI()
ffibuilder.cdef(SYSTEM + helpers_cdef())
ffibuilder.set_source(
    "sysvmq._sysvmq_cffi",
    '#include "_helpers.h"',
    sources=SOURCES,
    include_dirs=INCLUDE_DIRS,
    define_macros=DEFINE_MACROS,
    # timer_create lives in librt before glibc 2.17 (manylinux2014's); naming it costs nothing after.
    libraries=["rt"] if sys.platform.startswith("linux") else [],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
