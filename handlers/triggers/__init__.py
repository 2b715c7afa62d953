"""The trigger workflow: a Burst Advocate asks for a telescope trigger, an allowed person
approves it with a one-time code, and the approved trigger VOEvent goes out through the log.

A reaction to people's commands and to time (expiry), deciding from the log alone:

* :mod:`.workflow` — the decisions (request, approve, deny, withdraw, expire) and their order;
* :mod:`.request` — a request folded from its events, and the ids its decisions share;
* :mod:`.codes` — approval codes, their keyed hash, the wrong-code guard;
* :mod:`.delivery` — submit through the ingest as ``local:triggers``, then every channel;
* :mod:`.voevent` — the trigger VOEvent from its template;
* :mod:`.texts` — what people are told;
* :mod:`.config` — ``[triggers]``.

The chat bot (:mod:`burstbus.bots`) parses what was typed and drives this; nothing here knows
which transport a person used.
"""

from .outcome import Outcome
from .workflow import TriggerWorkflow

__all__ = ["Outcome", "TriggerWorkflow"]
