"""The camera preview answers in one codec of the browser's offer: the one the shared
encoder already produces for the room when offered, else H.264, else VP8."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, VideoStreamTrack

from services.web.preview import CameraPreview, PreviewError

TIMEOUT = 10.0


class CodecTrack(VideoStreamTrack):
    """Stands in for the encoded track: remembers the codec it was told to send."""

    def __init__(self) -> None:
        super().__init__()
        self.codec: str | None = None

    def set_codec(self, codec: str) -> None:
        self.codec = codec


async def _offer(codecs: list[str]) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="recvonly")
    caps = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences(
        [c for c in caps if c.mimeType.split("/")[1].lower() in (*codecs, "rtx")])
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def _answered(sdp: str) -> set[str]:
    return {line.split()[1].split("/")[0].lower() for line in sdp.splitlines()
            if line.startswith("a=rtpmap:") and "rtx/" not in line}


@pytest.mark.parametrize(("preferred", "offered", "sent"), [
    ((), ["h264", "vp8"], "h264"),
    (("vp8",), ["h264", "vp8"], "vp8"),  # a VP8 room runs: no second encode
    (("h264",), ["vp8", "h264"], "h264"),
    ((), ["vp8"], "vp8"),
    (("h264",), ["vp8"], "vp8"),
])
async def test_preview_codec(preferred: tuple[str, ...], offered: list[str],
                             sent: str) -> None:
    made: list[CodecTrack] = []

    def factory() -> CodecTrack:
        made.append(CodecTrack())
        return made[-1]

    preview = CameraPreview(factory, preferred=lambda: preferred)
    browser, sdp = await asyncio.wait_for(_offer(offered), TIMEOUT)
    try:
        answer = await asyncio.wait_for(preview.answer(sdp, "s", lambda s: True), TIMEOUT)
        assert _answered(answer["sdp"]) == {sent}
        [track] = made
        assert track.codec == sent
    finally:
        await asyncio.wait_for(preview.close(), TIMEOUT)
        await browser.close()


async def test_an_offer_without_h264_or_vp8_is_refused() -> None:
    preview = CameraPreview(CodecTrack)
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    # what a VP9/AV1-only browser would offer: rename the codecs in the SDP
    sdp = pc.localDescription.sdp.replace("VP8/90000", "VP9/90000").replace(
        "H264/90000", "AV1/90000")
    try:
        with pytest.raises(PreviewError) as err:
            await asyncio.wait_for(preview.answer(sdp, "s", lambda s: True), TIMEOUT)
        assert err.value.status == 400
        assert preview.peers == 0
    finally:
        await preview.close()
        await pc.close()
