"""Every aiortc internal the appliance relies on is still there, in the shape it expects.

aiortc and av are pinned to the minor versions the suite runs against (pyproject.toml);
when they are raised, this test names the internal that moved. Users of each one:

- ``RTCRtpSender._handle_rtcp_packet`` and ``RTCRtpSender._ssrc``: services/media/track.py
  (PLI/FIR and REMB reach the shared encoder)
- ``aiortc.rtcrtpsender.RtcpPsfbPacket``, ``unpack_remb_fci``, ``RTCP_PSFB_*``: same
- ``RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms=)``: services/room/stats.py
- ``RTCRtpReceiver.__jitter_buffer`` (``JitterBuffer``: ``capacity``, ``_is_video``), the
  receiver setting ``packet._data`` before the buffer sees it, ``JitterBuffer.add``
  returning ``(pli, frame)``: services/room/rtc.py (the packet tap that feeds each
  member's own jitter buffer)
- ``RTCRtpSender._next_encoded_frame(codec)`` returning an ``RTCEncodedFrame`` with a
  settable ``audio_level``, and ``RTCRtpSender.track``: services/room/opus_send.py (the
  mic's Opus packets carry their audio level; receiver reports reach the mic track)
- ``RTCRtpTransceiver._codecs`` and ``_offerDirection``: services/web/preview.py
- the sender's name-mangled RTP state (``__track``, ``__mid``, ``__encoder``,
  ``__rtp_header_extensions_map``, ``__rtp_started``/``__rtp_exited``, the RTCP counters
  ``__ntp_timestamp``/``__rtp_timestamp``/``__octet_count``/``__packet_count``, RTX's
  ``__rtx_payload_type``/``__rtx_sequence_number``), ``RTCRtpSender._next_encoded_frame``,
  ``aiortc.rtcrtpsender.random_sequence_number``; the DTLS transport's (the room's own,
  ``services.room.dtls``, in aiortc's place) ``_state``,
  ``_tx_srtp`` and ``__tx_bytes``/``__tx_packets``; aioice's ``Connection._nominated``
  (pairs with ``protocol.transport`` and ``remote_addr``): services/room/rtp_send.py
- the sender's ``__lsr`` and ``_send_rtcp(packets)`` (its sender report, rebuilt from
  consistent counters), ``RtcpSrPacket(ssrc, sender_info, reports)``, the DTLS
  transport's ``_send_rtp`` calling ``_tx_srtp.protect``/``protect_rtcp`` (replaced by
  a locked session), ``aiortc.codecs.get_encoder`` and the packetizers' ``pack``:
  services/room/rtp_send.py, srtp_lock.py, video_send.py (the encoder thread's sender)
- ``RTCRtpReceiver.__stop_decoder()`` (puts None in ``__decoder_queue``, joins and clears
  ``__decoder_thread``; ``stop()``, an RTCP BYE and a disconnect go through it) and
  ``decoder_worker`` ending when it reads None: services/room/decoders.py (the stop
  without the join)
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from services.room.rtc import PacketTap, packet_tap, tap_audio_packets

T = 10.0


def need(obj: Any, attr: str, where: str) -> Any:
    """``obj.attr``, or a failure naming the aiortc internal that vanished."""
    if not hasattr(obj, attr):
        pytest.fail(f"aiortc internal vanished: {where} (used by the appliance; "
                    f"see tests/room/test_aiortc_internals.py)")
    return getattr(obj, attr)


@pytest.fixture
async def offered() -> AsyncIterator[RTCPeerConnection]:
    """A peer connection that has applied a remote audio+video offer (no network used)."""
    no_stun = RTCConfiguration(iceServers=[])
    offerer, answerer = RTCPeerConnection(no_stun), RTCPeerConnection(no_stun)
    try:
        offerer.addTransceiver("audio", direction="sendrecv")
        offerer.addTransceiver("video", direction="sendrecv")
        offer = await asyncio.wait_for(offerer.createOffer(), T)
        await asyncio.wait_for(answerer.setRemoteDescription(offer), T)
        yield answerer
    finally:
        await asyncio.wait_for(offerer.close(), T)
        await asyncio.wait_for(answerer.close(), T)


def test_sender_rtcp_hook_points() -> None:
    handler = need(RTCRtpSender, "_handle_rtcp_packet", "RTCRtpSender._handle_rtcp_packet")
    assert inspect.iscoroutinefunction(handler), \
        "aiortc internal changed: RTCRtpSender._handle_rtcp_packet is no longer a coroutine"
    import aiortc.rtcrtpsender as rtcrtpsender

    for name in ("RtcpPsfbPacket", "unpack_remb_fci", "RTCP_PSFB_PLI", "RTCP_PSFB_FIR",
                 "RTCP_PSFB_APP"):
        need(rtcrtpsender, name, f"aiortc.rtcrtpsender.{name}")


async def test_sender_ssrc(offered: RTCPeerConnection) -> None:
    for transceiver in offered.getTransceivers():
        ssrc = need(transceiver.sender, "_ssrc", "RTCRtpSender._ssrc")
        assert isinstance(ssrc, int), "aiortc internal changed: RTCRtpSender._ssrc is not an int"


async def test_receiver_internals(offered: RTCPeerConnection) -> None:
    kinds = {}
    for transceiver in offered.getTransceivers():
        receiver = transceiver.receiver
        assert isinstance(receiver, RTCRtpReceiver)
        handle = need(receiver, "_handle_rtp_packet", "RTCRtpReceiver._handle_rtp_packet")
        assert "arrival_time_ms" in inspect.signature(handle).parameters, \
            "aiortc internal changed: RTCRtpReceiver._handle_rtp_packet(arrival_time_ms=)"
        buffer = need(receiver, "_RTCRtpReceiver__jitter_buffer",
                      "RTCRtpReceiver.__jitter_buffer")
        assert isinstance(buffer, JitterBuffer), \
            "aiortc internal changed: RTCRtpReceiver.__jitter_buffer is not a JitterBuffer"
        need(buffer, "capacity", "JitterBuffer.capacity")
        kinds[transceiver.kind] = need(buffer, "_is_video", "JitterBuffer._is_video")
    assert kinds == {"audio": False, "video": True}, \
        f"aiortc internal changed: JitterBuffer._is_video per kind is {kinds}"
    audio = next(t.receiver for t in offered.getTransceivers() if t.kind == "audio")
    tap = tap_audio_packets(audio)
    assert isinstance(tap, PacketTap), "the audio receive path could not be tapped"
    assert audio._RTCRtpReceiver__jitter_buffer is tap
    assert packet_tap(audio.track) is tap
    # the tap reads each packet's codec from the receiver's table, by payload type,
    # which receive() fills in place
    codecs = need(audio, "_RTCRtpReceiver__codecs", "RTCRtpReceiver.__codecs")
    assert isinstance(codecs, dict) and tap._codecs is codecs
    fills = "self.__codecs[codec.payloadType] = codec"
    assert fills in inspect.getsource(RTCRtpReceiver.receive), \
        "aiortc internal changed: RTCRtpReceiver.receive() no longer fills __codecs by type"


def test_receiver_stop_decoder_can_run_first() -> None:
    stop = need(RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder", "RTCRtpReceiver.__stop_decoder")
    source = inspect.getsource(inspect.unwrap(stop))  # aiortc's own, if already replaced
    assert "__decoder_thread.join()" in source and "__decoder_thread = None" in source, \
        "aiortc internal changed: RTCRtpReceiver.__stop_decoder no longer joins and clears"
    assert "self.__stop_decoder()" in inspect.getsource(RTCRtpReceiver.stop), \
        "aiortc internal changed: RTCRtpReceiver.stop() no longer goes through __stop_decoder"
    assert "__decoder_queue.put(None)" in source, \
        "aiortc internal changed: RTCRtpReceiver.__stop_decoder no longer ends the thread by None"
    # aiortc's own worker (the appliance's own replaces it: services/room/decoders.py)
    from services.room import decoders

    worker = decoders.REPLACED.get("worker", rtcrtpreceiver.decoder_worker)
    assert worker is not decoders.decoder_worker
    body = inspect.getsource(worker)
    assert "if task is None:" in body and "break" in body, \
        "aiortc internal changed: decoder_worker no longer ends when it reads None"
    assert list(inspect.signature(worker).parameters) == [
        "loop", "input_q", "output_q", "decode_error"], \
        "aiortc internal changed: decoder_worker takes other arguments"
    assert "target=decoder_worker" in inspect.getsource(RTCRtpReceiver.receive), \
        "aiortc internal changed: receive() no longer starts the module's decoder_worker"


def test_receiver_sets_packet_data_before_the_jitter_buffer() -> None:
    # the receiver stores the depayloaded frame in packet._data, which the buffers read
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "packet._data" in source, \
        "aiortc internal vanished: RTCRtpReceiver._handle_rtp_packet sets packet._data"
    tap = PacketTap(capacity=128)
    got: list[tuple[int, int, bytes]] = []
    tap.sink = lambda seq, ts, data, arrival: got.append((seq, ts, data))
    packet = RtpPacket(payload_type=111, sequence_number=7, timestamp=960, payload=b"x")
    packet._data = b"opus"  # type: ignore[attr-defined]
    assert tap.add(packet) == (False, None)
    assert got == [(7, 960, b"opus")]
    assert JitterFrame  # the type aiortc's buffers return, still importable


async def test_transceiver_codecs_and_offer_direction(offered: RTCPeerConnection) -> None:
    for transceiver in offered.getTransceivers():
        codecs = need(transceiver, "_codecs", "RTCRtpTransceiver._codecs")
        assert codecs and all(hasattr(c, "mimeType") and hasattr(c, "payloadType")
                              and hasattr(c, "parameters") for c in codecs), \
            "aiortc internal changed: RTCRtpTransceiver._codecs items"
        direction = need(transceiver, "_offerDirection", "RTCRtpTransceiver._offerDirection")
        assert direction == "sendrecv"
    video = next(t for t in offered.getTransceivers() if t.kind == "video")
    assert any(c.mimeType.lower() == "video/h264" for c in video._codecs)


def test_sender_encoded_frame_hook_points() -> None:
    import aiortc.rtcrtpsender as rtcrtpsender

    step = need(RTCRtpSender, "_next_encoded_frame", "RTCRtpSender._next_encoded_frame")
    assert inspect.iscoroutinefunction(step), \
        "aiortc internal changed: RTCRtpSender._next_encoded_frame is no longer a coroutine"
    assert list(inspect.signature(step).parameters) == ["self", "codec"], \
        "aiortc internal changed: RTCRtpSender._next_encoded_frame(codec)"
    frame_cls = need(rtcrtpsender, "RTCEncodedFrame", "aiortc.rtcrtpsender.RTCEncodedFrame")
    frame = frame_cls([b"x"], 0, None)
    frame.audio_level = -20
    assert "enc_frame.audio_level" in inspect.getsource(RTCRtpSender._run_rtp), \
        "aiortc internal changed: RTCRtpSender._run_rtp no longer writes the audio level"
    need(RTCRtpSender, "track", "RTCRtpSender.track")


RTP_SEND_SENDER_STATE = ("track", "mid", "encoder", "rtp_header_extensions_map", "rtp_started",
                         "rtp_exited", "ntp_timestamp", "rtp_timestamp", "octet_count",
                         "packet_count", "rtx_payload_type", "rtx_sequence_number", "lsr")


async def test_frame_sender_internals(offered: RTCPeerConnection) -> None:
    import aiortc.rtcrtpsender as rtcrtpsender
    from aiortc.rtcdtlstransport import State

    need(rtcrtpsender, "random_sequence_number", "aiortc.rtcrtpsender.random_sequence_number")
    need(RTCRtpSender, "_next_encoded_frame", "RTCRtpSender._next_encoded_frame")
    need(RTCRtpSender, "_send_rtcp", "RTCRtpSender._send_rtcp")
    from aiortc.codecs import get_encoder
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtp import RtcpSrPacket

    assert {"ssrc", "sender_info", "reports"} <= set(
        inspect.signature(RtcpSrPacket).parameters), "aiortc internal changed: RtcpSrPacket"
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "session = self._tx_srtp" in send_rtp, \
        "RTCDtlsTransport._send_rtp no longer protects via _tx_srtp (read at each call)"
    for mime in ("video/VP8", "video/H264"):
        from aiortc import RTCRtpCodecParameters

        packer = get_encoder(RTCRtpCodecParameters(mimeType=mime, clockRate=90000))
        need(packer, "pack", f"{mime} packetizer .pack")
    for transceiver in offered.getTransceivers():
        sender = transceiver.sender
        for name in RTP_SEND_SENDER_STATE:
            need(sender, f"_RTCRtpSender__{name}", f"RTCRtpSender.__{name}")
        dtls = sender.transport
        assert isinstance(need(dtls, "_state", "RTCDtlsTransport._state"), State)
        need(dtls, "_tx_srtp", "RTCDtlsTransport._tx_srtp")
        for name in ("tx_bytes", "tx_packets"):
            need(dtls, f"_RTCDtlsTransport__{name}", f"RTCDtlsTransport.__{name}")
        connection = need(dtls.transport, "_connection", "RTCIceTransport._connection")
        nominated = need(connection, "_nominated", "aioice Connection._nominated")
        assert isinstance(nominated, dict), \
            "aioice internal changed: Connection._nominated is not a dict"
    from aioice.ice import CandidatePair

    pair_fields = inspect.signature(CandidatePair.__init__).parameters
    assert "protocol" in pair_fields, "aioice internal changed: CandidatePair(protocol=)"
    assert "remote_candidate" in pair_fields
    need(CandidatePair, "remote_addr", "aioice CandidatePair.remote_addr")


async def test_end_decoder_ends_the_thread_without_a_join() -> None:
    """What stops aiortc's decoder threads (``services.room.decoders``): the thread is
    told to end and not waited for, and it ends by itself."""
    from services.room.decoders import end_decoder

    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("audio").receiver
    frames: asyncio.Queue[Any] = asyncio.Queue()
    thread = threading.Thread(target=rtcrtpreceiver.decoder_worker, args=(
        asyncio.get_running_loop(), receiver._RTCRtpReceiver__decoder_queue,  # type: ignore[attr-defined]
        frames, threading.Event()))
    thread.start()
    receiver._RTCRtpReceiver__decoder_thread = thread  # type: ignore[attr-defined]
    end_decoder(receiver)
    assert receiver._RTCRtpReceiver__decoder_thread is None  # type: ignore[attr-defined]
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
    assert await asyncio.wait_for(frames.get(), T) is None  # the track is told it ended
    await pc.close()
