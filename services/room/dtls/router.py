"""Which receiver or sender of a bundled connection an RTP or RTCP packet is for.

With BUNDLE every stream of a peer connection arrives on one transport. An RTP packet
goes to the receiver that signalled its SSRC; a packet from an SSRC no one signalled
goes to the one receiver that takes its payload type, or, when several do, to the
receiver of the MID it carries (RFC 8843, 9.2), and its SSRC is remembered. RTCP goes
by what it is about: a sender report and a BYE to the receiver of that source; report
blocks, feedback and REMB to the sender of the SSRC they name.
"""

from __future__ import annotations

from typing import Any

from aiortc import rtp
from aiortc.rtp import RtcpByePacket, RtcpPsfbPacket, RtcpRrPacket, RtcpRtpfbPacket, RtcpSrPacket


class RtpRouter:
    def __init__(self) -> None:
        self.receivers: set[Any] = set()
        self.senders: dict[int, Any] = {}
        self.by_mid: dict[str, Any] = {}
        self.by_ssrc: dict[int, Any] = {}
        self.by_payload_type: dict[int, set[Any]] = {}

    def register_receiver(self, receiver: Any, ssrcs: list[int], payload_types: list[int],
                          mid: str | None = None) -> None:
        self.receivers.add(receiver)
        if mid is not None:
            self.by_mid[mid] = receiver
        for ssrc in ssrcs:
            self.by_ssrc[ssrc] = receiver
        for payload_type in payload_types:
            self.by_payload_type.setdefault(payload_type, set()).add(receiver)

    def register_sender(self, sender: Any, ssrc: int) -> None:
        self.senders[ssrc] = sender

    def unregister_receiver(self, receiver: Any) -> None:
        self.receivers.discard(receiver)
        for mid in [k for k, v in self.by_mid.items() if v is receiver]:
            del self.by_mid[mid]
        for ssrc in [k for k, v in self.by_ssrc.items() if v is receiver]:
            del self.by_ssrc[ssrc]
        for receivers in self.by_payload_type.values():
            receivers.discard(receiver)

    def unregister_sender(self, sender: Any) -> None:
        for ssrc in [s for s, v in self.senders.items() if v is sender]:
            del self.senders[ssrc]

    def route_rtp(self, packet: Any) -> Any:
        """The receiver of ``packet`` (an ``aiortc.rtp.RtpPacket``), or None: drop it."""
        takers = self.by_payload_type.get(packet.payload_type, ())
        receiver = self.by_ssrc.get(packet.ssrc)
        if receiver is not None:
            return receiver if receiver in takers else None
        if len(takers) == 1:
            receiver = next(iter(takers))
        else:
            receiver = self.by_mid.get(packet.extensions.mid)
            if receiver not in takers:
                return None
        self.by_ssrc[packet.ssrc] = receiver
        return receiver

    def route_rtcp(self, packet: Any) -> set[Any]:
        """The receivers and senders ``packet`` (one parsed RTCP packet) concerns."""
        found = []
        if isinstance(packet, RtcpSrPacket):
            found.append(self.by_ssrc.get(packet.ssrc))
        elif isinstance(packet, RtcpByePacket):
            found.extend(self.by_ssrc.get(source) for source in packet.sources)
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            found.extend(self.senders.get(report.ssrc) for report in packet.reports)
        elif isinstance(packet, (RtcpPsfbPacket, RtcpRtpfbPacket)):
            found.append(self.senders.get(packet.media_ssrc))
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == rtp.RTCP_PSFB_APP:
                try:  # REMB names its streams in its FCI (its media SSRC is 0)
                    found.extend(self.senders.get(ssrc)
                                 for ssrc in rtp.unpack_remb_fci(packet.fci)[1])
                except ValueError:
                    pass
        return {recipient for recipient in found if recipient is not None}
