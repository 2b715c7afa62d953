"""The witness: the centre signs its log's head so that others can hold it to it.

``checkpoint`` (the signed bytes and the document), ``keys`` (the Ed25519 key), ``witness``
(signing, and the outbox to NATS, chat rooms and a file), ``against`` (``verify --against``),
``evidence`` and ``bundle`` (a burst's evidence bundle and its offline check), ``config``
(``[witness]``), ``component`` (the registered package).
"""
