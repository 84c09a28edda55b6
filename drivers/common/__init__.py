"""The vocabulary every layer shares: events and the bus, actions and their arguments,
secret redaction, atomic file writes and child processes.

This is the bottom of the house: ``device/``, ``services/`` and the rest of ``drivers/``
import from here, and nothing here imports from above (only :mod:`drivers.errors` and
:mod:`drivers.queues`).
"""
