"""``GET /metrics``: the appliance's status in the Prometheus text format (0.0.4)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web

from drivers.common.states import ApplianceState
from services.web.context import context
from services.web.events import event_counts

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Status sections turned into metrics by walking their numbers.
_SKIP = {"state", "reason", "version", "uptime", "sim", "room", "stats", "subsystems",
         "devices", "virtual_buttons", "camera_preview"}
_MEMBER_KEYS = {"members", "per_member", "remote"}
Labels = tuple[tuple[str, str], ...]


def _name(*parts: str) -> str:
    name = "_".join(p for p in parts if p)
    return re.sub(r"[^a-zA-Z0-9_]", "_", name).strip("_")


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def _walk(prefix: str, data: Any, labels: tuple[tuple[str, str], ...] = ()
          ) -> Iterator[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every number below ``data`` as (metric name, labels, value)."""
    value = _number(data)
    if value is not None:
        yield _name(prefix), labels, value
        return
    if isinstance(data, Mapping):
        for key, sub in data.items():
            if str(key) in _MEMBER_KEYS and isinstance(sub, Mapping):
                for member, stats in sub.items():
                    yield from _walk(_name(prefix, "member"), stats,
                                     (*labels, ("member", str(member))))
            elif str(key) in _MEMBER_KEYS and isinstance(sub, list):
                for item in sub:
                    if isinstance(item, Mapping) and "id" in item:
                        rest = {k: v for k, v in item.items() if k != "id"}
                        yield from _walk(_name(prefix, "member"), rest,
                                         (*labels, ("member", str(item["id"]))))
            else:
                yield from _walk(_name(prefix, str(key)), sub, labels)


#: The page's own guard counters (connections, refusals, slow clients, login refusals).
WEB_METRICS = {"connections": "edgeroom_web_connections",
               "max_connections": "edgeroom_web_max_connections",
               "refused": "edgeroom_web_connections_refused_total",
               "slow_closed": "edgeroom_web_slow_connections_closed_total",
               "accept_errors": "edgeroom_web_accept_errors_total",
               "logins_refused": "edgeroom_web_logins_refused_total"}


def render(status: Mapping[str, Any], events: Mapping[str, int], sse: Mapping[str, int],
           web_counts: Mapping[str, int] | None = None) -> str:
    samples: list[tuple[str, Labels, float]] = []
    for state in ApplianceState:
        samples.append(("edgeroom_state", (("state", str(state)),),
                        1.0 if status.get("state") == str(state) else 0.0))
    samples.append(("edgeroom_uptime_seconds", (), float(status.get("uptime", 0.0))))
    room = status.get("room") or {}
    members = room.get("members") or []
    samples.append(("edgeroom_room_in_room", (), 1.0 if room.get("state") == "in_room" else 0.0))
    samples.append(("edgeroom_room_members", (), float(len(members))))
    samples.append(("edgeroom_room_members_talking", (),
                    float(sum(1 for m in members if isinstance(m, Mapping) and m.get("talking")))))
    samples.extend(_walk("edgeroom_stats", status.get("stats") or {}))
    for name, sub in (status.get("subsystems") or {}).items():
        labels: Labels = (("subsystem", str(name)),)
        samples.append(("edgeroom_subsystem_up", labels, 1.0 if sub.get("running") else 0.0))
        samples.append(("edgeroom_subsystem_restarts_total", labels,
                        float(sub.get("restarts", 0))))
        samples.append(("edgeroom_subsystem_failures_total", labels,
                        float(sub.get("failures", 0))))
    for key, value in status.items():
        if key not in _SKIP:
            samples.extend(_walk(_name("edgeroom", str(key)), value))
    for name, count in sorted(events.items()):
        samples.append(("edgeroom_events_total", (("event", name),), float(count)))
    samples.append(("edgeroom_room_reconnects_total", (), float(events.get("reconnecting", 0))))
    samples.append(("edgeroom_web_event_stream_clients", (), float(sse.get("clients", 0))))
    samples.append(("edgeroom_web_event_stream_dropped_total", (), float(sse.get("dropped", 0))))
    for key, value in (web_counts or {}).items():
        if key in WEB_METRICS:
            samples.append((WEB_METRICS[key], (), float(value)))
    lines: list[str] = []
    seen: set[str] = set()
    for name, labels, value in samples:
        if name not in seen:
            seen.add(name)
            kind = "counter" if name.endswith("_total") else "gauge"
            lines.append(f"# TYPE {name} {kind}")
        label_text = ",".join(f'{k}="{_label(v)}"' for k, v in labels)
        text = _value(value)
        lines.append(f"{name}{{{label_text}}} {text}" if labels else f"{name} {text}")
    return "\n".join(_group(lines)) + "\n"


def _value(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _group(lines: list[str]) -> list[str]:
    """Prometheus wants every sample of a metric right after its TYPE line."""
    order: dict[str, list[str]] = {}
    current = ""
    for line in lines:
        if line.startswith("# TYPE "):
            current = line.split()[2]
            order.setdefault(current, []).insert(0, line)
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        order.setdefault(name, []).append(line)
    return [line for group in order.values() for line in group]


async def metrics(request: web.Request) -> web.Response:
    from services.web.handlers import status_snapshot

    ctx = context(request)
    guard = ctx.listener.stats() if ctx.listener is not None else {}
    text = render(status_snapshot(request), event_counts(ctx.appliance),
                  {"clients": ctx.sse_clients, "dropped": ctx.sse_dropped},
                  {**guard, "logins_refused": ctx.limiter.refused})
    return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})
