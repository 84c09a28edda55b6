"""The frame thread encodes at the encoders' nice value and comes back after each frame,
or, where the kernel would not let it come back, hands the encode to a nicer worker.

The rule is the kernel's own (CAP_SYS_NICE, or RLIMIT_NICE): the tests run the real
calls, once with the capability (CI runs as root) and once in a child process that
``setpriv`` has started without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from drivers.common.nicer import NicerWhile, has_cap_sys_nice, may_lower_nice_to
from services.media.codecs import ENCODER_NICE

ROOT = Path(__file__).resolve().parents[2]

#: Publishes the sim camera through the shared encoder for a few frames and prints what
#: ran where: whether this process may come back from a nicer value, the threads, and
#: the nice value each encode ran at.
CHILD = """
import asyncio, json, os, threading
from drivers.camera.sim import SimCamera
from drivers.common.nicer import may_lower_nice_to
from services.media.codecs import CodecEncode
from services.media.encoder import SharedVideoEncoder

seen = []
encode = CodecEncode.encode
def noting(self, *args):
    tid = threading.get_native_id()
    seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, tid)))
    return encode(self, *args)
CodecEncode.encode = noting

async def main():
    enc = SharedVideoEncoder(lambda: SimCamera(320, 240, 30), encoder="libx264")
    sub = enc.subscribe("test", maxsize=100)
    await enc.start()
    try:
        packets = [await asyncio.wait_for(sub.get(), 5) for _ in range(5)]
        names = sorted(t.name for t in threading.enumerate())
    finally:
        await enc.stop()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    print(json.dumps({"may": may_lower_nice_to(base), "base": base, "names": names,
                      "seen": seen, "packets": len(packets)}))

asyncio.run(main())
"""


def _child(*prefix: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([*prefix, sys.executable, "-c", CHILD], capture_output=True,
                            text=True, timeout=60, cwd=ROOT, env=env, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def test_a_block_runs_nicer_and_the_thread_comes_back() -> None:
    got: dict[str, object] = {}

    def thread() -> None:
        tid = threading.get_native_id()
        base = os.getpriority(os.PRIO_PROCESS, tid)
        nicer = NicerWhile.for_this_thread(ENCODER_NICE)
        got["base"], got["may"] = base, may_lower_nice_to(base)
        if nicer is None:
            return
        with nicer:
            got["inside"] = os.getpriority(os.PRIO_PROCESS, tid)
        got["after"] = os.getpriority(os.PRIO_PROCESS, tid)
        got["failures"] = nicer.failures

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    if os.geteuid() == 0 and has_cap_sys_nice():
        assert got["may"]  # what CI runs: the capability lets the thread come back
    if not got["may"] or int(got["base"]) >= ENCODER_NICE:  # type: ignore[call-overload]
        assert "inside" not in got  # not made nicer: the caller uses a worker thread
        return
    assert got["inside"] == ENCODER_NICE
    assert got["after"] == got["base"]
    assert got["failures"] == 0


def test_the_frame_thread_encodes_itself_when_it_may_come_back() -> None:
    data = _child()
    if not data["may"] or int(data["base"]) >= ENCODER_NICE:  # type: ignore[call-overload]
        pytest.skip("this process may not set a thread's nice value back down")
    seen = data["seen"]
    assert isinstance(seen, list) and seen and data["packets"] == 5
    assert {name for name, _ in seen} == {"video-camera"}  # the frame thread, no worker
    assert all(nice == ENCODER_NICE for _, nice in seen)
    names = data["names"]
    assert isinstance(names, list) and not any(n.startswith("h264-") for n in names)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="dropping CAP_SYS_NICE for a child needs root and setpriv")
def test_without_the_capability_a_nicer_worker_encodes() -> None:
    data = _child("prlimit", "--nice=0:0", "setpriv", "--bounding-set=-sys_nice",
                  "--inh-caps=-sys_nice")
    assert data["may"] is False  # RLIMIT_NICE 0 and no capability
    seen = data["seen"]
    assert isinstance(seen, list) and seen and data["packets"] == 5
    assert all(name.startswith("h264-") for name, _ in seen)
    assert all(nice >= ENCODER_NICE for _, nice in seen)
