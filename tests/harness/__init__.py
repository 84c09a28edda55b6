"""A reusable harness for tests that need a real room server.

- :mod:`tests.harness.netns`: private network namespaces on a bridge, and event loops
  running inside them.
- :mod:`tests.harness.janus`: a real Janus in one of them, from a generated config.
- :mod:`tests.harness.peers`: in-process room sessions with sim devices.
- :mod:`tests.harness.appliance`: ``edgeroom run --sim`` processes in a namespace.
- :mod:`tests.harness.audio`: what a sim speaker WAV contains (tones, levels).
- :mod:`tests.harness.impaired` (with :mod:`~tests.harness.impair` and
  :mod:`~tests.harness.impair_fwd`): the impairment lab, hosts behind a userspace network
  emulator (delay, jitter, loss, bursts, a bandwidth cap, outages);
  ``Network.add_impaired_host``.
- :mod:`tests.harness.pulse`: a private PulseAudio null sink, an ALSA device with its own
  clock (through alsa-lib's ``pulse`` plugin) for the ALSA mic and speaker.
- :mod:`tests.harness.fixtures`: pytest fixtures tying these together (use
  ``pytest_plugins = ["tests.harness.fixtures"]`` in a conftest).
"""
