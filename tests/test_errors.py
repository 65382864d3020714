"""The exception classes: the builtins they extend, and one errno each."""

import errno
import queue

import pytest

import sysvmq
from sysvmq._errors import ERRNO_TO_EXCEPTION, error_from_errno

CLASSES = [
    (sysvmq.QueueEmpty, errno.ENOMSG, queue.Empty),
    (sysvmq.QueueFull, errno.EAGAIN, queue.Full),
    (sysvmq.QueueRemoved, errno.EIDRM, sysvmq.SysVMQError),
    (sysvmq.QueueNotFound, errno.ENOENT, FileNotFoundError),
    (sysvmq.QueueExists, errno.EEXIST, FileExistsError),
    (sysvmq.MessageTooLarge, errno.E2BIG, sysvmq.SysVMQError),
    (sysvmq.UnsupportedOperation, errno.ENOSYS, NotImplementedError),
]


@pytest.mark.parametrize(("cls", "code", "builtin"), CLASSES)
def test_class_extends_oserror_and_its_builtin(cls: type, code: int, builtin: type) -> None:
    exc = error_from_errno(code, "msgrcv on queue 1", cls=cls)
    assert isinstance(exc, sysvmq.SysVMQError)
    assert isinstance(exc, OSError)
    assert isinstance(exc, builtin)
    assert exc.errno == code


@pytest.mark.parametrize(("cls", "code", "builtin"), CLASSES)
def test_table_maps_errno_to_class(cls: type, code: int, builtin: type) -> None:
    assert ERRNO_TO_EXCEPTION[code] is cls


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_permission_error_keeps_the_kernels_errno(code: int) -> None:
    exc = error_from_errno(code, "msgsnd on queue 1")
    assert type(exc) is sysvmq.QueuePermissionError
    assert isinstance(exc, PermissionError)
    assert exc.errno == code


def test_fixed_errno_wins_over_the_kernels() -> None:
    # A receive timeout is QueueEmpty/ENOMSG whatever the last try returned.
    exc = error_from_errno(errno.EAGAIN, "msgrcv", cls=sysvmq.QueueEmpty)
    assert exc.errno == errno.ENOMSG


def test_unknown_errno_is_the_base_class_with_strerror() -> None:
    exc = error_from_errno(errno.ENOMEM, "msgsnd on queue 7")
    assert type(exc) is sysvmq.SysVMQError
    assert exc.errno == errno.ENOMEM
    assert "msgsnd on queue 7" in str(exc)
    assert "memory" in str(exc).lower()


def test_detail_replaces_strerror() -> None:
    exc = error_from_errno(errno.E2BIG, "msgsnd", "exceeds kernel.msgmax (8192)")
    assert str(exc).endswith("msgsnd: exceeds kernel.msgmax (8192)")
