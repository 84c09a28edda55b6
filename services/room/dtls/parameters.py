"""What a DTLS transport shows of itself in SDP and to aiortc: its state, certificate,
fingerprints and role, under the names aiortc's ``rtcdtlstransport`` gives them
(:mod:`.transport` re-exports each)."""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass, field

from services.room.dtls import openssl


class State(enum.Enum):
    NEW = 0
    CONNECTING = 1
    CONNECTED = 2
    CLOSED = 3
    FAILED = 4


@dataclass
class RTCDtlsFingerprint:
    """A certificate fingerprint as SDP carries it (``sha-256``, ``AB:CD:...``)."""

    algorithm: str
    value: str


@dataclass
class RTCDtlsParameters:
    """The far end's (or our) fingerprints and DTLS role (``auto``, ``client``,
    ``server``)."""

    fingerprints: list[RTCDtlsFingerprint] = field(default_factory=list)
    role: str = "auto"


class RTCCertificate:
    """A peer connection's key and self-signed certificate (ECDSA P-256, 30 days)."""

    def __init__(self, certificate: openssl.Certificate) -> None:
        self._certificate = certificate
        self._fingerprints = {name: certificate.fingerprint(name) for name in openssl.DIGESTS}

    @property
    def expires(self) -> datetime.datetime:
        return self._certificate.expires

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        return [RTCDtlsFingerprint(algorithm=name, value=value)
                for name, value in self._fingerprints.items()]

    @classmethod
    def generateCertificate(cls) -> RTCCertificate:
        return cls(openssl.Certificate())
