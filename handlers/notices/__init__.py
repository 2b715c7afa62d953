"""The centre's own notices: a request (a pipeline's result, a JSON message on NATS or HTTP)
becomes one SVOM-style VOEvent, published through the ordinary ingest.

* :mod:`.kinds` — the FSC's notice types: Packet_Type, IVORN name, notice level;
* :mod:`.instruments` — per-instrument content from operator files (parameters, How);
* :mod:`.request` — a request judged (pure), its one id;
* :mod:`.intake` — requests into the log (``publication.requested`` / ``.refused``), the port;
* :mod:`.decide` — the notice a request becomes given the burst's earlier ones (pure):
  IVORN and revision, citations (followup, supersedes, retraction);
* :mod:`.render` — the VOEvent from the recorded decision, with voevent-parse (pure);
* :mod:`.publisher` — the log follower: decide, record, submit as ``local:notices``, record
  the outcome;
* :mod:`.drafts` — the Notice Creator's two-person rule: drafted by one, published by another;
* :mod:`.products` — the orchestrator's products that are notice requests (``data.available``);
* :mod:`.config` — ``[notices]``; :mod:`.component` — the package.
"""
