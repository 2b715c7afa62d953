"""The HTTP bridge: voeventdb-compatible ``/apiv1``, VOEvent submission, health and metrics."""

from burstbus.bridges.http.app import COMPONENTS, HTTP_STATS, READER, make_app, serve

__all__ = ["COMPONENTS", "HTTP_STATS", "READER", "make_app", "serve"]
