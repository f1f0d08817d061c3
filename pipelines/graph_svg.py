"""The pipeline graph as SVG, drawn on the server from the definition: one box per node,
coloured by the status of the run's executions of it, with counts for expanded nodes.
Also the graph as text, for ``manage.py pipelines graph``."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from pipelines.dsl import Chain, Divert, Divide, End, Expand, Graph

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 168, 46, 48, 18, 12

# Precedence when a node has executions in several states (e.g. an expanded node).
STATUS_ORDER = ["failed", "running", "retrying", "waiting", "enqueued", "cancelled", "succeeded"]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""


def _exits(graph: Graph, node_id: str, seen: set[str] | None = None) -> list[str]:
    """The nodes where the flow starting at ``node_id`` ends (their transition is End)."""
    seen = seen if seen is not None else set()
    if node_id in seen:
        return []
    seen.add(node_id)
    transition = graph.nodes[node_id].transition
    if isinstance(transition, End):
        return [node_id]
    if isinstance(transition, Chain):
        return _exits(graph, transition.next, seen)
    if isinstance(transition, Divide | Expand):
        return _exits(graph, transition.join, seen)
    found: list[str] = []
    for entry in [e for _, e in transition.routes] + [transition.otherwise]:
        found += _exits(graph, entry, seen)
    return list(dict.fromkeys(found))


def edges(graph: Graph) -> list[Edge]:
    result: list[Edge] = []
    for node in graph.nodes.values():
        t = node.transition
        if isinstance(t, Chain):
            result.append(Edge(node.id, t.next))
        elif isinstance(t, Divide):
            result += [Edge(node.id, entry) for entry in t.branches]
            for entry in t.branches:
                result += [Edge(exit_, t.join) for exit_ in _exits(graph, entry)]
        elif isinstance(t, Expand):
            result.append(Edge(node.id, t.entry, "each"))
            result += [Edge(exit_, t.join) for exit_ in _exits(graph, t.entry)]
        elif isinstance(t, Divert):
            result += [Edge(node.id, entry, key) for key, entry in t.routes]
            result.append(Edge(node.id, t.otherwise, "otherwise"))
    return list(dict.fromkeys(result))


def layers(graph: Graph, graph_edges: list[Edge]) -> dict[str, int]:
    """Longest-path layering: each node one column right of its furthest predecessor."""
    incoming: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for edge in graph_edges:
        incoming[edge.target].append(edge.source)
    depth: dict[str, int] = {}

    def visit(node_id: str) -> int:
        if node_id not in depth:
            depth[node_id] = 0  # cycles cannot happen; this guards recursion anyway
            depth[node_id] = max((visit(p) + 1 for p in incoming[node_id]), default=0)
        return depth[node_id]

    for node_id in graph.nodes:
        visit(node_id)
    return depth


def node_status(counts: dict[str, int]) -> str:
    for status in STATUS_ORDER:
        if counts.get(status):
            return status
    return "pending"


def render_svg(graph: Graph, counts: dict[str, dict[str, int]] | None = None) -> SafeString:
    counts = counts or {}
    graph_edges = edges(graph)
    depth = layers(graph, graph_edges)
    columns: dict[int, list[str]] = {}
    for node_id in graph.nodes:  # definition order keeps branches in declared order
        columns.setdefault(depth[node_id], []).append(node_id)
    tallest = max(len(c) for c in columns.values())
    body_h = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    # The halt handler sits in its own row under the flow: it runs only if the run fails.
    height = body_h + (NODE_H + GAP_Y if graph.halt is not None else 0)
    width = PAD * 2 + len(columns) * NODE_W + (len(columns) - 1) * GAP_X
    pos: dict[str, tuple[int, int]] = {}
    for col, node_ids in columns.items():
        column_h = len(node_ids) * NODE_H + (len(node_ids) - 1) * GAP_Y
        top = (body_h - column_h) // 2
        for row, node_id in enumerate(node_ids):
            pos[node_id] = (PAD + col * (NODE_W + GAP_X), top + row * (NODE_H + GAP_Y))
    parts: list[str] = []
    for edge in graph_edges:
        (x1, y1), (x2, y2) = pos[edge.source], pos[edge.target]
        sx, sy, tx, ty = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
        mid = (sx + tx) // 2
        parts.append(
            format_html(
                '<path class="edge" d="M{} {} C{} {} {} {} {} {}"/>',
                sx,
                sy,
                mid,
                sy,
                mid,
                ty,
                tx,
                ty,
            )
        )
        if edge.label:
            parts.append(
                format_html(
                    '<text class="edge-label" x="{}" y="{}">{}</text>',
                    tx - 6,
                    ty - 5,
                    edge.label,
                )
            )
    for node_id, node in graph.nodes.items():
        x, y = pos[node_id]
        node_counts = counts.get(node_id, {})
        status = node_status(node_counts)
        total = sum(node_counts.values())
        detail = ", ".join(f"{n} {s}" for s, n in sorted(node_counts.items())) or "not reached"
        badge = ""
        if total > 1:
            done = node_counts.get("succeeded", 0)
            badge = format_html(
                '<text class="count" x="{}" y="{}">{}/{}</text>',
                x + NODE_W - 8,
                y + 14,
                done,
                total,
            )
        undo = ""
        if node.step.has_compensation():
            undo_counts = counts.get(f"compensation:{node_id}", {})
            undo = format_html(
                '<text class="undo status-{}" x="{}" y="{}">{}</text>',
                node_status(undo_counts) if undo_counts else "none",
                x + NODE_W - 8,
                y + 38,
                "\u21ba undone" if undo_counts.get("succeeded") else "\u21ba compensable",
            )
        parts.append(
            format_html(
                '<g class="node status-{}" data-node="{}"><title>{} ({}): {}</title>'
                '<rect x="{}" y="{}" width="{}" height="{}" rx="8"/>'
                '<text class="label" x="{}" y="{}">{}</text>'
                '<text class="kind" x="{}" y="{}">{}</text>{}{}</g>',
                status,
                node_id,
                node.step.__name__,
                node.label,
                detail,
                x,
                y,
                NODE_W,
                NODE_H,
                x + 10,
                y + 20,
                node.step.__name__[:20],
                x + 10,
                y + 36,
                node.label,
                badge,
                undo,
            )
        )
    if graph.halt is not None:
        parts.append(_halt_node(graph, counts, body_h - PAD + GAP_Y))
    return mark_safe(  # noqa: S308 - every piece above is built with format_html
        f'<svg class="graph" viewBox="0 0 {width} {height}" width="100%" '
        # Its natural size at every width (the panel scrolls): never shrunk to tiny text.
        f'style="min-width:{width}px;max-width:{width}px" '
        f'role="img" aria-label="{escape(graph.pipeline)} graph">' + "".join(parts) + "</svg>"
    )


def _halt_node(graph: Graph, counts: dict[str, dict[str, int]], y: int) -> SafeString:
    assert graph.halt is not None
    halt_counts = counts.get(f"halt:{graph.halt.id}", {})
    status = node_status(halt_counts) if halt_counts else "pending"
    return format_html(
        '<g class="node halt status-{}" data-node="{}"><title>{} (on halt): {}</title>'
        '<rect x="{}" y="{}" width="{}" height="{}" rx="8"/>'
        '<text class="label" x="{}" y="{}">{}</text>'
        '<text class="kind" x="{}" y="{}">on halt: runs once if the run fails</text></g>',
        status,
        graph.halt.id,
        graph.halt.step.__name__,
        ", ".join(f"{n} {s}" for s, n in sorted(halt_counts.items())) or "not run",
        PAD,
        y,
        NODE_W * 2,
        NODE_H,
        PAD + 10,
        y + 20,
        graph.halt.step.__name__[:40],
        PAD + 10,
        y + 36,
    )


def render_text(graph: Graph) -> str:
    """An indented text picture of the graph."""
    lines = [f"{graph.pipeline}"]
    for node_id, node in graph.nodes.items():
        t = node.transition
        if isinstance(t, Chain):
            nxt = f"-> {t.next}"
        elif isinstance(t, Divide):
            nxt = f"=> divide [{', '.join(t.branches)}] -> combine {t.join}"
        elif isinstance(t, Expand):
            nxt = f"=> expand each {t.entry} -> collapse {t.join}"
        elif isinstance(t, Divert):
            routes = ", ".join(f"{k}: {e}" for k, e in t.routes)
            nxt = f"=> divert {{{routes}, otherwise: {t.otherwise}}}"
        else:
            nxt = "(end)"
        lines.append(f"  {node_id:<24} {node.label:<9} {nxt}")
    if graph.halt is not None:
        lines.append(f"  {graph.halt.id:<24} {'on_halt':<9} (runs once if the run fails)")
    return "\n".join(lines)
