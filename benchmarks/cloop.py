"""The floor: plain C loops over msgsnd/msgrcv, compiled with CFFI when the benchmarks start.

Each loop does in C what a Python benchmark does per message, with one buffer
allocated up front, so every figure has beside it what the system calls alone
cost on the same machine, in the same run.
"""

import importlib.util
import pathlib
from types import ModuleType

from cffi import FFI

CDEF = """
int c_roundtrip(int msqid, size_t size, long count);
int c_roundtrip_copies(int msqid, size_t size, long count);
int c_send(int msqid, size_t size, long count);
int c_receive(int msqid, size_t size, long count);
"""

SOURCE = r"""
#include <sys/types.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct msg { long mtype; char mtext[1]; };

static struct msg *new_msg(size_t size)
{
    struct msg *m = malloc(sizeof(long) + size + 1);
    if (m != NULL) {
        m->mtype = 1;
        memset(m->mtext, 'x', size);
    }
    return m;
}

int c_roundtrip(int msqid, size_t size, long count)
{
    struct msg *out = new_msg(size), *in = new_msg(size);
    int rc = 0;
    for (long i = 0; i < count && rc == 0; i++) {
        if (msgsnd(msqid, out, size, 0) < 0 || msgrcv(msqid, in, size, 0, 0) < 0)
            rc = -errno;
    }
    free(out);
    free(in);
    return rc;
}

/* What any binding that takes bytes and returns new bytes must do besides the
   system calls: copy the text in behind the type (msgsnd(2) reads them
   together), and copy it out of the msgbuf into a new object. */
int c_roundtrip_copies(int msqid, size_t size, long count)
{
    struct msg *out = new_msg(size), *in = new_msg(size);
    char *text = malloc(size + 1), *copy;
    ssize_t n;
    int rc = 0;
    memset(text, 'x', size);
    for (long i = 0; i < count && rc == 0; i++) {
        memcpy(out->mtext, text, size);
        if (msgsnd(msqid, out, size, 0) < 0 || (n = msgrcv(msqid, in, size, 0, 0)) < 0) {
            rc = -errno;
            break;
        }
        copy = malloc((size_t)n + 1);
        memcpy(copy, in->mtext, (size_t)n);
        /* an empty asm that takes the pointer: the copy may not be optimised away */
        __asm__ volatile("" : : "r"(copy) : "memory");
        free(copy);
    }
    free(text);
    free(out);
    free(in);
    return rc;
}

int c_send(int msqid, size_t size, long count)
{
    struct msg *out = new_msg(size);
    int rc = 0;
    for (long i = 0; i < count && rc == 0; i++)
        if (msgsnd(msqid, out, size, 0) < 0)
            rc = -errno;
    free(out);
    return rc;
}

int c_receive(int msqid, size_t size, long count)
{
    struct msg *in = new_msg(size);
    int rc = 0;
    for (long i = 0; i < count && rc == 0; i++)
        if (msgrcv(msqid, in, size, 0, 0) < 0)
            rc = -errno;
    free(in);
    return rc;
}
"""


def build(folder: pathlib.Path) -> ModuleType:
    """Compile the loops into ``folder`` and return the module (its ``lib`` has the functions)."""
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source("_sysvmq_bench_cloop", SOURCE, extra_compile_args=["-O2"])
    path = ffi.compile(tmpdir=str(folder))
    spec = importlib.util.spec_from_file_location("_sysvmq_bench_cloop", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
