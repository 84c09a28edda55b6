"""Encode once, send everywhere: the camera's one H.264 encoder and the outputs it feeds.

- :mod:`~services.media.encoder`: :class:`SharedVideoEncoder` (one per camera).
- :mod:`~services.media.audio`: :class:`MicTee` (one mic reader, many consumers) and
  :class:`SharedAudioEncoder` (AAC for files and RTMP).
- :mod:`~services.media.track`: :class:`EncodedVideoTrack`, the room's video track
  (pre-encoded packets for aiortc, keyframe requests and bandwidth estimates back).
- :mod:`~services.media.recorder`: :class:`Recorder` (segmented MKV / fragmented MP4).
- :mod:`~services.media.rtmp`: :class:`RtmpStreamer` (FLV over RTMP, reconnecting).
- :mod:`~services.media.service`: :class:`MediaService`, what the appliance wires in.

Importing this package imports neither PyAV nor aiortc; the modules do.
"""
