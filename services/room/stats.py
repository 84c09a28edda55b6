"""Room statistics, once a second: upload bitrate, RTT and loss; per member received
bitrate, jitter, loss, and what its jitter buffer does (target and current delay, share
of audio concealed and time-stretched, late packets, FEC recoveries).

Upload figures come from aiortc's ``getStats`` (outbound RTP and the server's receiver
reports). aiortc's receiver stats carry no byte counts, so each receiver's packet handler
is wrapped once to count the bytes it gets (:func:`count_bytes`).

Loss: ``up.loss_pct`` is the loss the server reported in its last receiver report, in
percent. aiortc passes RTCP's "fraction lost" through as the raw 8-bit fixed-point byte
(0-255 for 0-99.6 %), so it is divided by 256 here (:func:`loss_percent`). A member's
``packets_lost`` counts the packets that will never be played: those the network lost
(sequence numbers that never arrived) plus those that arrived too late and were dropped
by the member's jitter buffer (its ``late`` count).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from services.room.mixer import RemoteAudioMixer

log = logging.getLogger(__name__)

#: What each member's jitter buffer reports (services.room.jitter), as is.
PLAYOUT_KEYS = ("target_ms", "delay_ms", "concealed_pct", "stretched_pct", "late", "fec",
                "fec_headroom_ms", "plc_replaced", "codec")


def count_bytes(receiver: Any) -> None:
    """Make ``receiver.er_bytes`` count RTP bytes received (idempotent)."""
    if hasattr(receiver, "er_bytes"):
        return
    receiver.er_bytes = 0
    original = receiver._handle_rtp_packet

    async def counted(packet: Any, arrival_time_ms: int) -> None:
        receiver.er_bytes += len(packet.payload) + 12
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = counted


def loss_percent(fraction_lost: float | None) -> float:
    """RTCP's fraction lost, as aiortc reports it (the raw byte, 0-255), in percent."""
    if not fraction_lost or fraction_lost < 0:
        return 0.0
    return round(100.0 * min(float(fraction_lost), 255.0) / 256.0, 1)


class StatsCollector:
    def __init__(self) -> None:
        self._prev: dict[str, tuple[float, int]] = {}
        self.latest: dict[str, Any] = {}

    def _rate_kbps(self, key: str, total: int, now: float) -> float:
        prev = self._prev.get(key)
        self._prev[key] = (now, total)
        if prev is None or now <= prev[0] or total < prev[1]:
            return 0.0
        return round((total - prev[1]) * 8 / (now - prev[0]) / 1000, 1)

    async def collect(self, pcs: dict[str, Any], receivers: dict[str, list[Any]],
                      mixer: RemoteAudioMixer, extra: dict[str, Any],
                      speaker_state: str | None = None) -> dict[str, Any]:
        now = time.monotonic()
        sent = 0
        rtts: list[float] = []
        lost = 0
        fraction: list[float] = []
        recv_total = 0
        expected_loss: int | None = None
        for label, pc in pcs.items():
            for sender in pc.getSenders():
                # the mic's Opus encoder (services.room.opus_send): the loss its FEC plans for
                send = getattr(getattr(sender.track, "encoder", None), "stats", None)
                if isinstance(send, dict) and "expected_loss_pct" in send:
                    expected_loss = send["expected_loss_pct"]
            report = await pc.getStats()
            for st in report.values():
                kind = getattr(st, "type", "")
                if kind == "outbound-rtp":
                    sent += st.bytesSent
                elif kind == "remote-inbound-rtp":
                    if st.roundTripTime is not None:
                        rtts.append(st.roundTripTime)
                    lost += max(0, st.packetsLost or 0)
                    fraction.append(loss_percent(st.fractionLost))
                elif kind == "transport" and label != "publisher":
                    recv_total += st.bytesReceived
        members: dict[str, Any] = {}
        mixer_stats = mixer.source_stats()
        # a voice's level is measured as the speaker plays it: none while it rests
        played = speaker_state in (None, "playing")
        for member_id, recvs in receivers.items():
            total = 0
            jitter_ms = 0.0
            member_lost = 0
            m = mixer_stats.get(member_id, {})
            # RTP timestamp units per ms: 8 for G.711 and G.722 (RFC 3551), 48 for Opus
            clock_khz = 48.0 if m.get("codec") in (None, "opus") else 8.0
            for receiver in recvs:
                count_bytes(receiver)
                total += receiver.er_bytes
                report = await receiver.getStats()
                for st in report.values():
                    if getattr(st, "type", "") == "inbound-rtp":
                        member_lost += max(0, st.packetsLost)
                        if st.kind == "audio":
                            jitter_ms = max(jitter_ms, st.jitter / clock_khz)
            # aiortc counts a packet that came after its turn as received; the member's
            # jitter buffer dropped it, so to the listener it is lost.
            member_lost += m.get("late") or 0
            members[member_id] = {
                "bitrate_kbps": self._rate_kbps(f"m:{member_id}", total, now),
                "jitter_ms": round(jitter_ms, 1),
                "packets_lost": member_lost,
                "playout_delay_ms": m.get("delay_ms"),
                "level_dbfs": m.get("level_dbfs") if played else None,
                "underruns": m.get("underruns", 0),
                **{key: m.get(key) for key in PLAYOUT_KEYS},
            }
        self.latest = {
            "up": {
                "bitrate_kbps": self._rate_kbps("up", sent, now),
                "rtt_ms": round(1000 * sum(rtts) / len(rtts), 1) if rtts else None,
                "packets_lost": lost,
                "loss_pct": max(fraction) if fraction else 0.0,
                "fec_expected_loss_pct": expected_loss,
            },
            "down": {"bitrate_kbps": self._rate_kbps("down", recv_total, now)},
            "members": members,
            "speaker": _speaker(mixer, speaker_state),
            **extra,
        }
        return self.latest


def _speaker(mixer: RemoteAudioMixer, state: str | None) -> dict[str, Any] | None:
    """The speaker's counters, and its ``state`` (playing, resting...) when known."""
    if mixer.sink is None:
        return None
    out: dict[str, Any] = dict(mixer.sink.stats)
    if state is not None:
        out["state"] = state
    return out
