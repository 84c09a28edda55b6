"""The mic's packets made and sent on the audio-send thread: what reaches the socket.

A real aiortc ``RTCRtpSender`` made a :class:`FrameRtpSender`, on a DTLS transport keyed
by the test (tests/room/test_rtp_send.py's ``wire``), sends a real :class:`MicTrack`
over the sim mic (its capture thread), through the shared mic's tee; the test unprotects
every datagram and parses it with aiortc's RTP parser and decodes it with libopus.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import State

from drivers.audio.sim import SimMic
from services.audio.opus import OpusDecoder
from services.media.audio import MicTee
from services.room.opus_send import OpusSendSettings
from services.room.rtp_send import send_frames
from services.room.tracks import MicTrack
from tests.room.test_opus_send import Gate
from tests.room.test_rtp_send import OPUS, extension_map, parameters, rtp_packets, wire
from tests.room.test_stats import receiver_report

__all__ = ["wire"]  # the fixture

T = 10.0
#: RFC 6464 level of the sim mic's tone (a -6 dBFS-peak sine: -9.03 dBFS RMS)
TONE_LEVEL = 9


async def _sending(dtls: Any, track: MicTrack) -> Any:
    sender = send_frames(RTCRtpSender(track, dtls))
    await sender.send(parameters([OPUS]))
    for _ in range(100):
        if sender.rtp_sink is not None:
            return sender
        await asyncio.sleep(0.02)
    raise AssertionError("the audio sink never started")


async def _after_change(rx: Any, receiver: Any, n: int, extensions: Any) -> list[Any]:
    """``n`` packets made after a change of the gate (those sent before are skipped)."""
    await asyncio.sleep(0.1)
    while not receiver.datagrams.empty():
        receiver.datagrams.get_nowait()
    return await rtp_packets(rx, receiver, n, extensions)


def _peak(packets: list[Any]) -> int:
    decoder = OpusDecoder()
    pcm = [decoder.decode(p.payload) for p in packets]
    return int(np.abs(np.concatenate(pcm[-3:]).astype(np.int32)).max())


async def test_mic_frames_leave_on_the_audio_send_thread(wire: Any) -> None:
    dtls, rx, receiver, _ = wire
    tee = MicTee(lambda: SimMic("tone:440"))
    branch = tee.branch("room")
    await branch.start()
    gate = Gate()
    track = MicTrack(branch, gate, OpusSendSettings(fec=True))
    extensions = extension_map([OPUS])
    sender = await _sending(dtls, track)
    sink = sender.rtp_sink
    try:
        got = await rtp_packets(rx, receiver, 10, extensions)
        assert tee._threaded and tee._task is None  # no loop pump for the room alone
        assert sink.threads == {"audio-send"}
        assert threading.current_thread().name not in sink.threads
        # the level the tee measured, in every packet; headers as the loop's sender writes
        assert {p.extensions.audio_level for p in got[2:]} == {(False, TONE_LEVEL)}
        assert {p.extensions.mid for p in got} == {"7"}
        assert all(p.extensions.abs_send_time is not None for p in got)
        assert {p.marker for p in got} == {1} and {p.ssrc for p in got} == {sender._ssrc}
        seqs = [p.sequence_number for p in got]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(10)]
        stamps = [(p.timestamp - got[0].timestamp) & 0xFFFFFFFF for p in got]
        assert stamps == [960 * i for i in range(10)]
        loud = _peak(got)
        assert loud > 10000
        # another user of the mic (recording, RTMP) still reads its frames on the loop
        outputs = tee.branch("outputs")
        await outputs.start()
        frames = [await asyncio.wait_for(outputs.read(), T) for _ in range(5)]
        assert [f.index for f in frames] == list(range(frames[0].index, frames[0].index + 5))
        assert tee._threaded and frames[0].level_dbfs is not None
        await outputs.stop()

        gate.value = (True, True, 50)  # the volume, read per frame
        got = await _after_change(rx, receiver, 8, extensions)
        assert abs(_peak(got) - loud / 2) < 0.15 * loud
        assert got[-1].extensions.audio_level == (False, TONE_LEVEL + 6)
        gate.value = (True, False, 100)  # muted
        got = await _after_change(rx, receiver, 8, extensions)
        assert _peak(got) < 50 and got[-1].extensions.audio_level == (False, 127)
        gate.value = (False, True, 100)  # the mic not open for the room: paced silence
        before = sink.packets
        await asyncio.sleep(1.0)
        assert 40 <= sink.packets - before <= 60
        assert track.last_audio_level == 127
        gate.value = (True, True, 100)

        # a receiver report reaches the encoder (its FEC) through the send thread
        await receiver_report(sender, fraction_lost=26, packets_lost=5)
        await _after_change(rx, receiver, 3, extensions)
        assert track.encoder.expected_loss_pct == 10
        # RTCP sender reports count what the thread sent
        _, _, count, octets = sender.counters()
        assert count == sink.packets + sink.dropped and octets > 0
    finally:
        await sender.stop()
    assert sink._closed and branch._thread_sink is None
    assert sink.failed is None and sink.send_errors == 0
    assert not tee._threaded and tee._task is not None  # back to the loop
    await tee.close()


async def test_the_send_stops_when_dtls_is_no_longer_connected(wire: Any) -> None:
    dtls, rx, receiver, _ = wire
    mic = SimMic("tone:440")
    await mic.start()
    track = MicTrack(mic, Gate())
    sender = await _sending(dtls, track)
    sink = sender.rtp_sink
    await rtp_packets(rx, receiver, 3, extension_map([OPUS]))
    dtls._state = State.CLOSED
    for _ in range(100):
        if sink._closed:
            break
        await asyncio.sleep(0.05)
    assert sink._closed and sink.failed == "DTLS closed"
    sent = sink.packets
    await asyncio.sleep(0.2)
    assert sink.packets == sent
    await asyncio.wait_for(sender.stop(), T)
    assert track.readyState == "ended"
    await mic.stop()


async def test_ten_ms_packets_of_a_mic_frame_are_spaced_out(wire: Any) -> None:
    """The sim mic's 20 ms frames make two 10 ms packets: they leave 10 ms apart, not in
    a pair the receiver would measure as jitter."""
    dtls, rx, receiver, _ = wire
    mic = SimMic("tone:440")
    await mic.start()
    track = MicTrack(mic, Gate(), OpusSendSettings(frame_ms=10))
    sender = await _sending(dtls, track)
    arrivals: list[float] = []
    try:
        await rtp_packets(rx, receiver, 4, extension_map([OPUS]))
        loop = asyncio.get_running_loop()
        for _ in range(40):
            await rtp_packets(rx, receiver, 1, extension_map([OPUS]))
            arrivals.append(loop.time())
    finally:
        await sender.stop()
        await mic.stop()
    gaps = np.diff(arrivals)
    assert float(np.median(gaps)) > 0.006, [round(g * 1000, 1) for g in gaps]
