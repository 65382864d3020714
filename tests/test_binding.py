"""The compiled binding: constants from the headers, platform flags, one importer."""

import pathlib
import re
import sys

import pytest

import sysvmq

PACKAGE = pathlib.Path(sysvmq.__file__).parent


def test_core_constants_match_the_linux_headers() -> None:
    if sys.platform != "linux":
        pytest.skip("values checked against Linux's <sys/ipc.h> and <sys/msg.h>")
    assert sysvmq.IPC_PRIVATE == 0
    assert sysvmq.IPC_CREAT == 0o1000
    assert sysvmq.IPC_EXCL == 0o2000
    assert sysvmq.IPC_NOWAIT == 0o4000
    assert (sysvmq.IPC_RMID, sysvmq.IPC_SET, sysvmq.IPC_STAT) == (0, 1, 2)
    assert sysvmq.MSG_NOERROR == 0o10000


@pytest.mark.skipif(sys.platform != "linux", reason="Linux-only constants")
def test_linux_constants_and_flags() -> None:
    assert (sysvmq.IPC_INFO, sysvmq.MSG_STAT, sysvmq.MSG_INFO, sysvmq.MSG_STAT_ANY) == (3, 11, 12, 13)
    assert (sysvmq.MSG_EXCEPT, sysvmq.MSG_COPY) == (0o20000, 0o40000)
    flags = ["HAS_IPC_INFO", "HAS_MSG_INFO", "HAS_MSG_STAT", "HAS_MSG_STAT_ANY", "HAS_MSG_EXCEPT", "HAS_MSG_COPY"]
    assert all(getattr(sysvmq, name) is True for name in flags)


def test_all_names_exist() -> None:
    for name in sysvmq.__all__:
        assert hasattr(sysvmq, name), name


def test_only_the_ffi_module_imports_the_compiled_binding() -> None:
    importers = sorted(p.name for p in PACKAGE.glob("*.py") if "_sysvmq_cffi" in p.read_text())
    assert importers == ["_ffi.py"]


def test_no_code_names_a_c_type_where_threads_may_run_it() -> None:
    # PyPy's cffi, realizing types from their names in several threads at once, has handed one
    # call another's type ("long[]" made as "struct sysvmq_call[]"): sysvmq parses every type it
    # makes or casts at run time once, in _ffi, at import, and passes the ctype.
    named = re.compile(r"""(?:ffi\.(?:new|cast|from_buffer)|\bnew)\(\s*["']""")
    found = [
        f"{p.name}:{n}"
        for p in PACKAGE.glob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if named.search(line)
    ]
    assert found == []


def test_typed_package() -> None:
    assert (PACKAGE / "py.typed").is_file()


def test_version() -> None:
    assert sysvmq.__version__.count(".") == 2
