"""The orchestrator: pipelines start when their inputs are available, are watched, retried,
and leave provenance — every decision an event in the log.

* :mod:`.config` — ``[orchestrator]``, ``[[pipelines]]`` and the graph check at start;
* :mod:`.messages` — statuses and data announcements as they arrive (NATS, HTTP), pure;
* :mod:`.runs` — a burst's runs and data folded from its events, pure;
* :mod:`.core` — the decisions: a burst's events and the time in, the next events out, pure;
* :mod:`.dispatch` — handing an attempt to its worker (NATS request, HTTP POST);
* :mod:`.node` — the thin adapter: a log follower, the watchdog's clock, the dispatcher;
* :mod:`.provenance` — the chain that made a product, as W3C PROV-JSON;
* :mod:`.component` — the package the service builds.
"""
