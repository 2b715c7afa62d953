"""A burst's processing graph as inline SVG: inputs → runs → products, coloured by status.

Drawn here like the sky charts (:mod:`.sky`): pure, numbers and names in, escaped SVG text
out, no JavaScript. The graph is the orchestrator's own fold of the burst's events
(``handlers/orchestrator/runs.py``), so it shows what the log says: every data item and
product (``data.available``), every run with its latest attempt's status, and the runs still
idling for part of their inputs (dashed, with what they lack).

Layout: columns by depth — raw data first, then each run one column right of its deepest
input, each product one column right of the run that made it; within a column, in the order
the log recorded them. Edges go from an input to the run that used it, and from a run to its
products.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from burstbus.handlers.orchestrator.runs import Burst

COLUMN = 190
ROW = 44
NODE_W = 150
NODE_H = 30
PAD = 12
MAX_NODES = 400


@dataclass
class _Node:
    key: str
    kind: str  # data | product | run | idling
    label: str
    detail: str
    status: str = ""
    depth: int = 0
    row: int = 0

    @property
    def x(self) -> float:
        return PAD + self.depth * COLUMN

    @property
    def y(self) -> float:
        return PAD + self.row * ROW


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def graph_svg(burst: Burst, link: str = "") -> str | None:
    """The burst's graph, or None when it has no data and no runs. ``link``: where a data
    item's or a run's provenance is (``…/api/provenance/``): each node links there."""
    nodes: dict[str, _Node] = {}
    edges: list[tuple[str, str]] = []
    requests = {a.request_id: run.run_id for run in burst.runs.values() for a in run.attempts}
    for item in burst.data[:MAX_NODES]:
        nodes[item.event_id] = _Node(item.event_id, "product" if item.produced_by else "data", item.kind,
                                     f"{item.kind} · {item.location}" + (f" · obs {item.obs_id}" if item.obs_id else ""))
    for run in list(burst.runs.values())[:MAX_NODES]:
        latest = run.latest
        label = run.pipeline + (f" #{latest.number}" if latest.number > 1 else "")
        detail = f"{run.pipeline} on {run.burst_id}" + (f" obs {run.obs_id}" if run.obs_id else "") + \
            f": {latest.status}, attempt {latest.number}/{run.max_attempts}" + (f" — {latest.reason}" if latest.reason else "")
        nodes[run.run_id] = _Node(run.run_id, "run", label, detail, latest.status)
        edges += [(i, run.run_id) for i in run.inputs if i in nodes]
    for run_id, idle in list(burst.idling.items())[:MAX_NODES]:
        inputs = [str(i.get("event_id")) for i in idle.get("inputs") or ()]
        missing = ", ".join(str(k) for k in idle.get("missing") or ())
        nodes[run_id] = _Node(run_id, "idling", str(idle.get("pipeline") or "?"), f"{idle.get('pipeline')}: waiting for {missing}",
                              "idling")
        edges += [(i, run_id) for i in inputs if i in nodes]
    for item in burst.data[:MAX_NODES]:
        producer = requests.get(item.produced_by or "")
        if producer is not None:
            edges.append((producer, item.event_id))
    if not nodes:
        return None
    incoming: dict[str, list[str]] = {}
    for source, target in edges:
        incoming.setdefault(target, []).append(source)

    depths: dict[str, int] = {}

    def depth(key: str, seen: frozenset[str] = frozenset()) -> int:
        if key in depths:
            return depths[key]
        if key in seen:
            return 0
        depths[key] = found = max((depth(s, seen | {key}) + 1 for s in incoming.get(key, ())), default=0)
        return found

    rows: dict[int, int] = {}
    for node in nodes.values():
        node.depth = depth(node.key)
        node.row = rows.get(node.depth, 0)
        rows[node.depth] = node.row + 1
    width = PAD * 2 + max(rows) * COLUMN + NODE_W
    height = PAD * 2 + (max(rows.values()) - 1) * ROW + NODE_H
    out = [f'<svg class="flow" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="inputs, runs and products of {escape(burst.burst_id)}">']
    for source, target in edges:
        a, b = nodes[source], nodes[target]
        x1, y1, x2, y2 = a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2
        mid = (x1 + x2) / 2
        out.append(f'<path class="flow-edge" d="M{x1:.0f},{y1:.0f}C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"/>')
    for node in nodes.values():
        radius = 14 if node.kind in ("run", "idling") else 3
        classes = f"flow-node flow-{node.kind}" + (f" status-fill-{node.status}" if node.status else "")
        target = node.key if node.kind != "run" else burst.runs[node.key].latest.request_id
        opening = f'<a href="{escape(link + target)}">' if link and node.kind != "idling" else ""
        out.append(f'{opening}<g class="{classes}"><title>{escape(node.detail)}</title>'
                   f'<rect x="{node.x:.0f}" y="{node.y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="{radius}"/>'
                   f'<text x="{node.x + NODE_W / 2:.0f}" y="{node.y + NODE_H / 2 + 4:.0f}" text-anchor="middle">'
                   f'{escape(_short(node.label))}</text></g>{"</a>" if opening else ""}')
    out.append("</svg>")
    return "".join(out)
