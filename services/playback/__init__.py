"""Playbacks: sound files, URLs and spoken text mixed into what the box sends to the
room, played on its speaker, or both (:class:`~services.playback.manager.PlaybackManager`)."""
