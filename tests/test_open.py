"""Getting a handle: keys, flags, named constructors, attach, pickling."""

import multiprocessing
import os
import pickle
import random

import pytest
from support import CREATED, register, remove

import sysvmq
from sysvmq import SysVMQ


def test_seed_readme_example(free_key: int) -> None:
    mq = register(SysVMQ(free_key, 1024, sysvmq.IPC_CREAT | sysvmq.IPC_EXCL | 0o666))
    try:
        mq.send("Hellø Wårld!")
        assert mq.stats().count == 1
        assert mq.receive().decode("utf-8") == "Hellø Wårld!"
        with pytest.raises(sysvmq.QueueEmpty):
            mq.receive(0, sysvmq.IPC_NOWAIT)
    finally:
        mq.destroy()


def test_key_and_its_negative_twin_name_one_queue() -> None:
    # A key of our own with the top bit set, created exclusively: never another program's queue.
    taken = {st.key for st in sysvmq.queues()}
    key = next(k for k in random.sample(range(0xDE000000, 0xDEFFFFFF), 64) if k not in taken)
    a = register(SysVMQ.create(key, exclusive=True))
    try:
        b = SysVMQ(key - 2**32)
        assert b.id == a.id
        assert a.key == b.key == key
        assert a.stats().key == key
    finally:
        remove(a)


@pytest.mark.parametrize("key", ["0xDEADC0DE", 1.0, None, b"k", True])
def test_key_of_wrong_type_is_type_error(key: object) -> None:
    with pytest.raises(TypeError, match="key must be an int"):
        SysVMQ(key, flags=sysvmq.IPC_CREAT)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [2**32, -(2**31) - 1, 2**64])
def test_key_out_of_range_is_value_error(key: int) -> None:
    with pytest.raises(ValueError, match=r"key -?\d+ is out of range"):
        SysVMQ(key, flags=sysvmq.IPC_CREAT)


def test_unknown_msgget_flag_bits_are_value_error() -> None:
    with pytest.raises(ValueError, match="unknown flag bits"):
        SysVMQ(sysvmq.IPC_PRIVATE, flags=sysvmq.IPC_NOWAIT)


def test_ipc_creat_without_permission_bits_creates_0600(free_key: int) -> None:
    q = register(SysVMQ(free_key, flags=sysvmq.IPC_CREAT | sysvmq.IPC_EXCL))
    assert q.stats().mode == 0o600


def test_flags_permission_bits_set_the_mode(free_key: int) -> None:
    q = register(SysVMQ(free_key, flags=sysvmq.IPC_CREAT | sysvmq.IPC_EXCL | 0o640))
    assert q.stats().mode == 0o640


def test_open_missing_key_is_queue_not_found(free_key: int) -> None:
    with pytest.raises(sysvmq.QueueNotFound, match=f"{free_key:#010x}") as info:
        SysVMQ.open(free_key)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(sysvmq.QueueNotFound):
        SysVMQ(free_key)


def test_open_private_is_value_error() -> None:
    with pytest.raises(ValueError, match="IPC_PRIVATE"):
        SysVMQ.open(sysvmq.IPC_PRIVATE)


def test_create_then_open_and_exclusive(free_key: int) -> None:
    q = register(SysVMQ.create(free_key, mode=0o660, exclusive=True))
    assert SysVMQ.create(free_key).id == q.id
    assert SysVMQ.open(free_key).id == q.id
    with pytest.raises(sysvmq.QueueExists) as info:
        SysVMQ.create(free_key, exclusive=True)
    assert isinstance(info.value, FileExistsError)
    assert q.stats().mode == 0o660


@pytest.mark.parametrize("mode", [-1, 0o1000, 0o7777])
def test_create_mode_out_of_range(mode: int) -> None:
    with pytest.raises(ValueError, match="mode"):
        SysVMQ.private(mode=mode)


def test_private_queues_are_distinct(make_queue) -> None:  # type: ignore[no-untyped-def]
    a, b = make_queue(), make_queue()
    assert a.id != b.id
    assert a.key == b.key == sysvmq.IPC_PRIVATE
    assert a.stats().mode == 0o600


def test_buffer_size_defaults_to_msgmax(queue: SysVMQ) -> None:
    assert queue.buffer_size == sysvmq.limits().msgmax


@pytest.mark.parametrize("size", [-1, "8"])
def test_bad_buffer_size(size: object) -> None:
    with pytest.raises((TypeError, ValueError), match="buffer_size"):
        SysVMQ.private(buffer_size=size)  # type: ignore[arg-type]


def test_buffer_size_above_msgmax_names_the_limit() -> None:
    msgmax = sysvmq.limits().msgmax
    with pytest.raises(ValueError, match=rf"kernel\.msgmax \({msgmax}\)"):
        SysVMQ.private(buffer_size=msgmax + 1)


def test_attach_by_id(queue: SysVMQ) -> None:
    queue.send(b"by id")
    other = SysVMQ.attach(queue.id, buffer_size=64)
    assert other == queue
    assert other.key == queue.key
    assert other.buffer_size == 64
    assert other.receive() == b"by id"


def test_attach_missing_id_is_queue_not_found(queue: SysVMQ) -> None:
    msqid = queue.id
    queue.destroy()
    with pytest.raises(sysvmq.QueueNotFound, match=str(msqid)):
        SysVMQ.attach(msqid)


def test_attach_negative_id_is_value_error() -> None:
    with pytest.raises(ValueError, match="msqid"):
        SysVMQ.attach(-1)


def test_repr_names_id_key_and_buffer(queue: SysVMQ) -> None:
    assert repr(queue) == f"<SysVMQ id={queue.id} key=0x00000000 buffer_size={queue.buffer_size}>"


def test_attributes_are_read_only(queue: SysVMQ) -> None:
    with pytest.raises(AttributeError):
        queue.id = 3  # type: ignore[misc]


def test_equality_and_hash_follow_the_id(make_queue) -> None:  # type: ignore[no-untyped-def]
    a, b = make_queue(), make_queue()
    assert a == SysVMQ.attach(a.id)
    assert hash(a) == hash(SysVMQ.attach(a.id))
    assert a != b


def test_pickle_round_trip_makes_no_syscall(queue: SysVMQ) -> None:
    clone = pickle.loads(pickle.dumps(queue))
    assert (clone.id, clone.key, clone.buffer_size) == (queue.id, queue.key, queue.buffer_size)
    queue.destroy()
    # The handle is only the id: unpickling a removed queue's handle still works,
    # and using it says the queue is gone.
    stale = pickle.loads(pickle.dumps(clone))
    with pytest.raises(sysvmq.QueueRemoved):
        stale.send(b"x")


class Tagged(SysVMQ):
    """A subclass with state of its own, in a __dict__."""

    def __init__(self, key: int, tag: str) -> None:
        super().__init__(key, flags=sysvmq.IPC_CREAT)
        self.tag = tag


class Slotted(SysVMQ):
    """A subclass with state of its own, in slots."""

    __slots__ = ("tag", "count")


def test_pickling_a_subclass_keeps_its_own_state(free_key: int, queue: SysVMQ) -> None:
    q = register(Tagged(free_key, "orders"))
    clone = pickle.loads(pickle.dumps(q))
    assert (type(clone), clone.id, clone.tag) == (Tagged, q.id, "orders")
    s = Slotted.attach(queue.id)
    s.tag, s.count = "slots", 3
    copied = pickle.loads(pickle.dumps(s))
    assert (type(copied), copied.id, copied.tag, copied.count) == (Slotted, queue.id, "slots", 3)
    clone.send(b"works")
    assert q.receive(block=False) == b"works"


def _echo_upper(q: SysVMQ) -> None:
    q.send(q.receive(1).upper(), 2)


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_handle_passes_to_multiprocessing_workers(queue: SysVMQ, method: str) -> None:
    ctx = multiprocessing.get_context(method)
    worker = ctx.Process(target=_echo_upper, args=(queue,))
    worker.start()
    queue.send(b"over " + method.encode(), 1)
    assert queue.receive(2, timeout=30) == b"OVER " + method.upper().encode()
    worker.join(30)
    assert worker.exitcode == 0


def test_handle_works_in_a_forked_child(queue: SysVMQ) -> None:
    queue.send(b"from parent", 1)
    pid = os.fork()
    if pid == 0:  # the child: exit status says what happened
        try:
            ok = queue.receive(1) == b"from parent"
            queue.send(b"from child", 2)
            os._exit(0 if ok else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert queue.receive(2, timeout=10) == b"from child"
    queue.send(b"parent still works", 3)
    assert queue.receive(3) == b"parent still works"


def test_suite_tracks_its_queues(queue: SysVMQ) -> None:
    assert queue.id in CREATED
