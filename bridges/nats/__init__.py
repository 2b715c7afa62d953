"""The NATS bridge: embedded nats-server, log → NATS outbox, NATS → log inbound.

Modules: ``server`` (the embedded nats-server), ``config`` (the ``[nats]`` section),
``outbound``, ``inbound`` and ``node`` (the supervised service component). This package
imports nothing at import time, so ``burstbus.config`` can import ``.config`` freely.
"""
