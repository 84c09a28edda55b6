"""DTLS-SRTP on the system's libssl and libcrypto (ctypes), in place of aiortc's pyOpenSSL,
cryptography and pylibsrtp: :mod:`.transport` stands in for ``aiortc.rtcdtlstransport``
(:mod:`services.room.stand_ins`)."""
