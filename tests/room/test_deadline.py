"""services.room.deadline: a loop stalled past a deadline does not time out an answer
that came in time, and a missing answer still times out."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from services.room import deadline


async def answer_in_socket(stall_s: float, timeout: float, wait: object) -> str:
    """The loop is stalled for ``stall_s`` right after a request went out, and the other
    side answers in time, during the stall (its bytes wait in our socket); returns what
    ``wait`` (``deadline.wait_for`` or ``asyncio.wait_for``) made of it."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    answer: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:  # a socket read, a reader task's step, then the waiter
        data = ours.recv(64)
        loop.call_soon(loop.call_soon, lambda: answer.done() or answer.set_result(data))

    loop.add_reader(ours.fileno(), readable)
    try:
        threading.Timer(timeout / 2, theirs.send, (b"pong",)).start()
        loop.call_soon(time.sleep, stall_s)  # the loop is late: nothing runs meanwhile
        try:
            got = await wait(answer, timeout)  # type: ignore[operator]
        except TimeoutError:
            return "timeout"
        return bytes(got).decode()
    finally:
        loop.remove_reader(ours.fileno())
        ours.close()
        theirs.close()


async def plain_timeout(aw: asyncio.Future[bytes], timeout: float) -> bytes:
    async with asyncio.timeout(timeout):
        return await aw


def test_a_stall_past_the_deadline_is_not_a_missing_answer() -> None:
    # asyncio's own timeout gives up on the answer on its way in ...
    assert asyncio.run(answer_in_socket(0.5, 0.2, plain_timeout)) == "timeout"
    # ... this one takes it
    assert asyncio.run(answer_in_socket(0.5, 0.2, deadline.wait_for)) == "pong"


async def no_answer(timeout: float, stall_every: float | None) -> float:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    stalls = 0

    def stall() -> None:
        nonlocal stalls
        stalls += 1
        time.sleep(0.3)
        if stall_every is not None and stalls < 20:
            loop.call_later(stall_every, stall)

    if stall_every is not None:
        loop.call_soon(stall)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await deadline.wait_for(never, timeout)
    assert never.cancelled()
    return time.monotonic() - t0


def test_a_missing_answer_still_times_out() -> None:
    took = asyncio.run(no_answer(0.5, None))
    assert 0.5 <= took < 1.0  # a punctual loop: the timeout itself
    # a loop stalled over and over: at most the timeout again on top (and the stalls)
    took = asyncio.run(no_answer(0.5, 0.05))
    assert 0.5 <= took < 0.5 * 2 + 0.3 * 3
