"""The one-generation-at-a-time lock the embedded engines share (`repoctx.engines.held_for`)."""

from __future__ import annotations

import threading

import pytest

from repoctx.engines import Deadline, held_for
from repoctx.engines.base import EngineError


def test_a_free_lock_is_held_for_the_block_and_released_after():
    lock = threading.Lock()
    with held_for(lock, Deadline(1.0)):
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(ValueError):
        with held_for(lock, Deadline(1.0)):
            raise ValueError("inside")
    assert not lock.locked()


def test_a_lock_held_past_the_deadline_is_a_busy_engine_error():
    lock = threading.Lock()
    lock.acquire()
    try:
        with pytest.raises(EngineError, match=r"^the model was busy with another generation for the whole 0\.05 s timeout$"):
            with held_for(lock, Deadline(0.05)):
                pytest.fail("the block ran without the lock")
    finally:
        lock.release()
