"""The C boundary: the only module that imports the compiled binding.

Everything else reaches C through the names here: ``ffi`` and ``lib``, the
constants of <sys/ipc.h> and <sys/msg.h> with the platform's HAS_* flags,
and the limits of the C types the kernel's interface uses.
"""

from ._sysvmq_cffi import ffi, lib

__all__ = [
    "ffi",
    "lib",
    "new",
    "IPC_PRIVATE",
    "IPC_CREAT",
    "IPC_EXCL",
    "IPC_NOWAIT",
    "IPC_RMID",
    "IPC_SET",
    "IPC_STAT",
    "MSG_NOERROR",
    "IPC_INFO",
    "MSG_INFO",
    "MSG_STAT",
    "MSG_STAT_ANY",
    "MSG_EXCEPT",
    "MSG_COPY",
    "HAS_IPC_INFO",
    "HAS_MSG_INFO",
    "HAS_MSG_STAT",
    "HAS_MSG_STAT_ANY",
    "HAS_MSG_EXCEPT",
    "HAS_MSG_COPY",
    "LONG_MIN",
    "LONG_MAX",
    "INT_MAX",
    "ID_MAX",
    "KEY_BITS",
    "KEY_MASK",
    "HEADROOM",
    "LONGS",
    "CHARS",
    "SIZES",
    "CALL_P",
    "MSQID_DS_P",
    "MSGINFO_P",
    "LONG_LONG_P",
    "WATCH_P",
    "LONG_P",
    "INT_P",
]

IPC_PRIVATE: int = lib.IPC_PRIVATE
IPC_CREAT: int = lib.IPC_CREAT
IPC_EXCL: int = lib.IPC_EXCL
IPC_NOWAIT: int = lib.IPC_NOWAIT
IPC_RMID: int = lib.IPC_RMID
IPC_SET: int = lib.IPC_SET
IPC_STAT: int = lib.IPC_STAT
MSG_NOERROR: int = lib.MSG_NOERROR
# Linux only; 0 elsewhere, where the matching HAS_ flag is False.
IPC_INFO: int = lib.IPC_INFO
MSG_INFO: int = lib.MSG_INFO
MSG_STAT: int = lib.MSG_STAT
MSG_STAT_ANY: int = lib.MSG_STAT_ANY
MSG_EXCEPT: int = lib.MSG_EXCEPT
MSG_COPY: int = lib.MSG_COPY

HAS_IPC_INFO: bool = bool(lib.HAS_IPC_INFO)
HAS_MSG_INFO: bool = bool(lib.HAS_MSG_INFO)
HAS_MSG_STAT: bool = bool(lib.HAS_MSG_STAT)
HAS_MSG_STAT_ANY: bool = bool(lib.HAS_MSG_STAT_ANY)
HAS_MSG_EXCEPT: bool = bool(lib.HAS_MSG_EXCEPT)
HAS_MSG_COPY: bool = bool(lib.HAS_MSG_COPY)

LONG_MAX: int = (1 << (8 * ffi.sizeof("long") - 1)) - 1
LONG_MIN: int = -LONG_MAX - 1
INT_MAX: int = (1 << (8 * ffi.sizeof("int") - 1)) - 1
ID_MAX: int = (1 << (8 * ffi.sizeof("uid_t"))) - 2  # (uid_t)-1 means "no change" to the kernel
# key_t is 32 bits on Linux and macOS, 64 on the 64-bit BSDs.
KEY_BITS: int = 8 * ffi.sizeof("key_t")
KEY_MASK: int = (1 << KEY_BITS) - 1
HEADROOM: int = lib.SYSVMQ_HEADROOM  # bytes before receive_many's texts area

# C memory Python fills before reading: zeroing it first would be waste.
new = ffi.new_allocator(should_clear_after_alloc=False)

# The C types made or cast at run time, parsed once here, at import: code that may run in
# several threads at once passes these, never a type's name. PyPy's cffi, given names in
# several threads at once, has been seen to hand one call another's type (a "long[]" made as
# "struct sysvmq_call[]", a "struct sysvmq_call *" taken for "long[]").
LONGS = ffi.typeof("long[]")
CHARS = ffi.typeof("char[]")
SIZES = ffi.typeof("size_t[]")
CALL_P = ffi.typeof("struct sysvmq_call *")
MSQID_DS_P = ffi.typeof("struct msqid_ds *")
MSGINFO_P = ffi.typeof("struct sysvmq_msginfo *")
LONG_LONG_P = ffi.typeof("long long *")
WATCH_P = ffi.typeof("struct sysvmq_watch *")
LONG_P = ffi.typeof("long *")
INT_P = ffi.typeof("int *")
for _name in dir(lib):  # and every function and constant of lib, realized on first use: now
    getattr(lib, _name)
del _name
