"""The Kafka bridge: GCN Kafka (and any Kafka cluster) in through the ingest, our notices out.

Configuration: ``config`` (the ``[kafka]`` section: ``[[kafka.upstreams]]`` clusters and the
topics read from them, ``[[kafka.outputs]]`` what is published), ``connection`` (an upstream →
confluent-kafka's config dict, GCN through ``gcn_kafka``), ``presets`` (topic lists by
mission), ``outbound_config`` (one output's rule).

In (one component per upstream, ``kafka.in.<name>``): the pure parts — ``messages`` (a message
→ a VOEvent submission, a JSON notice event or a refusal), ``jsonnotice`` (JSON notice schemas),
``offsets`` (start positions and gaps), ``liveness`` (the silence clock) — and the I/O around
them: ``client`` (the blocking consumer on its own thread), ``intake`` (a batch into the log),
``positions`` (``state.sqlite``), ``inbound`` (the loop), ``alarms`` (pages to the on-duty BAs),
``inbound_metrics``; ``check`` and ``backfill`` for the CLI.

Out: the checkpointed outbox (``outbound`` and its ``outbound_*``, ``producer``, ``tail``).
``component`` gathers them for the service.
"""
