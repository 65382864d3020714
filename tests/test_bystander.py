"""The bystander CI runs the suite beside (tests/bystander.py) notices when its queues are touched."""

from typing import Iterator

import pytest
from bystander import Bystander
from support import register, remove

import sysvmq


@pytest.fixture
def bystander() -> Iterator[Bystander]:
    b = Bystander(seed=10)
    b.stand(3)
    for owned in b.standing:
        register(owned.q)  # made by this test's process: the session removes them if the test does not
    yield b
    for owned in b.standing:
        remove(owned.q)


def test_left_alone_it_finds_its_queues_intact(bystander: Bystander) -> None:
    bystander.finish()
    assert bystander.failure is None


def test_it_notices_a_queue_removed_by_someone_else(bystander: Bystander) -> None:
    bystander.standing[0].q.destroy()
    bystander.finish()
    assert isinstance(bystander.failure, sysvmq.QueueRemoved)


def test_it_notices_a_queue_changed_by_someone_else(bystander: Bystander) -> None:
    bystander.standing[1].q.update(mode=0o666 if bystander.standing[1].mode != 0o666 else 0o600)
    bystander.finish()
    assert isinstance(bystander.failure, AssertionError)
    assert "changed under us" in str(bystander.failure)


def test_it_notices_a_message_taken_by_someone_else(bystander: Bystander) -> None:
    bystander.standing[2].q.receive()
    bystander.finish()
    assert isinstance(bystander.failure, AssertionError)
