"""The export guard's picture: export against the limit, the battery, the actions.

Pure: the caller hands in the recorder's history of the guard's entities
(HA's ``/api/history/period`` rows: ``state`` and ``last_changed``) and the
guard's limits; :func:`chart_data` turns them into series and
:func:`render_svg` draws them with pygal (an SVG charting library with no
compiled dependency, so it installs wherever AppDaemon does).

What is drawn, over the last ``window`` (an hour by default):

* grid export (W, export positive whatever the meter's sign convention),
  missing readings (``unavailable``) left as holes in the line;
* the export limit and the limit less the deadband (where the guard aims);
* battery discharge (W);
* the guard's actions, one marker each, from the changes of its
  ``last_action`` entity (start, lower, raise, stop) and its ``error``
  entity (a fault and its clearing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Final

import pygal  # type: ignore[import-untyped]  # pygal ships no type hints
from pygal.style import Style  # type: ignore[import-untyped]

from gridwatch.hass.states import parse_float, parse_state, parse_timestamp

__all__ = [
    "ActionKind",
    "ChartData",
    "Mark",
    "action_kind",
    "chart_data",
    "render_svg",
]

# A 1-second meter gives 3600 points an hour: one point per bucket keeps the
# SVG small and the render fast; the export keeps each bucket's PEAK, so a
# short spike over the limit still shows.
MAX_POINTS: Final = 360
# States of the guard's error entity that mean "no fault".
NO_FAULT: Final = frozenset({"none", "ok", "no_error"})
# The line series' colours: export, limit, limit - deadband, battery.
_LINE_COLOURS: Final = ("#e8a33c", "#dc4a4a", "#f08080", "#4bb34b")
# Marker colours by kind.
_MARK_COLOURS: Final = {
    "start": "#5aa0e6",
    "raise": "#9fd0ff",
    "lower": "#c47ce6",
    "stop": "#ffffff",
    "fault": "#ff3030",
    "cleared": "#7fe07f",
}


def _style(marks: Iterable[str]) -> Style:
    """Large type and thick lines for a wall tablet at arm's length."""
    return Style(
        background="#1c1c1c",
        plot_background="#1c1c1c",
        foreground="#e8e8e8",
        foreground_strong="#ffffff",
        foreground_subtle="#555555",
        colors=(*_LINE_COLOURS, *(_MARK_COLOURS[m] for m in marks)),
        label_font_size=18,
        major_label_font_size=18,
        legend_font_size=18,
        title_font_size=22,
        value_font_size=16,
        tooltip_font_size=16,
        stroke_width=3,
        stroke_opacity=1,
        font_family="sans-serif",
    )


class ActionKind(StrEnum):
    """What a marker on the chart stands for."""

    START = "start"
    RAISE = "raise"
    LOWER = "lower"
    STOP = "stop"
    FAULT = "fault"
    CLEARED = "cleared"


@dataclass(frozen=True)
class Mark:
    """One action of the guard.

    Attributes:
        at: when (tz-aware).
        kind: what kind.
        text: the entity's state (shown as the marker's tooltip).
    """

    at: datetime
    kind: ActionKind
    text: str


@dataclass(frozen=True)
class ChartData:
    """Everything the chart draws.

    Attributes:
        start, end: the window (tz-aware).
        export_w: (time, export W or None for a hole).
        battery_w: (time, discharge W or None).
        limit_w: the export limit.
        deadband_w: the guard aims this far below it.
        marks: the guard's actions.
    """

    start: datetime
    end: datetime
    export_w: tuple[tuple[datetime, float | None], ...]
    battery_w: tuple[tuple[datetime, float | None], ...]
    limit_w: float
    deadband_w: float
    marks: tuple[Mark, ...]


# The guard's ``last_action`` texts (guard.state.Action.describe + outcome):
# "start 2000 W (request): verified", "set_power 1200 W (...): verified",
# "stop (...): verified", "renew lease to 5 min: verified".
_ACTION_TEXT: Final = re.compile(
    r"^(start|set_power|stop)\b(?:\s+(\d+(?:\.\d+)?)\s*W)?", re.IGNORECASE
)


def action_kind(text: str, previous_w: float | None) -> tuple[ActionKind | None, float | None]:
    """The kind of a ``last_action`` state and the power it left standing.

    Only verified actions are marked: a failed or refused call did not act.
    A power change is a raise or a lowering against ``previous_w``.

    Args:
        text: the entity's state.
        previous_w: the power the previous verified action left (None: unknown).

    Returns:
        (kind or None, the power standing after it).
    """
    match = _ACTION_TEXT.match(text.strip())
    if match is None or not text.rstrip().lower().endswith("verified"):
        return None, previous_w
    verb, power = match.group(1).lower(), match.group(2)
    if verb == "stop":
        return ActionKind.STOP, 0.0
    watts = float(power) if power is not None else previous_w
    if verb == "start":
        return ActionKind.START, watts
    if watts is None or previous_w is None:
        return ActionKind.RAISE, watts
    return (ActionKind.LOWER if watts < previous_w else ActionKind.RAISE), watts


def _points(rows: Iterable[Mapping[str, Any]], sign: float) -> list[tuple[datetime, float | None]]:
    out: list[tuple[datetime, float | None]] = []
    for row in rows:
        at = parse_timestamp(row.get("last_changed"))
        if at is None:
            continue  # a row without a time cannot be placed
        value = parse_float(row.get("state")).value
        out.append((at, None if value is None else sign * value))
    return out


def _bucketed(
    points: Sequence[tuple[datetime, float | None]],
    start: datetime,
    end: datetime,
    *,
    peak: bool,
) -> tuple[tuple[datetime, float | None], ...]:
    """At most :data:`MAX_POINTS` points: a held value per bucket (its max when ``peak``).

    HA's history has a row per change only: a value holds until the next
    row, so each bucket also carries the value standing at its start.
    """
    width = (end - start) / MAX_POINTS
    out: list[tuple[datetime, float | None]] = []
    standing: float | None = None
    i = 0
    for b in range(MAX_POINTS + 1):
        t0 = start + width * b
        t1 = t0 + width
        seen = [standing]
        while i < len(points) and points[i][0] < t1:
            at, value = points[i]
            if at < t0:
                seen = [value]
            else:
                seen.append(value)
            standing = value
            i += 1
        values = [v for v in seen if v is not None]
        if not values or (seen[-1] is None and not peak):
            out.append((min(t0, end), None))
        else:
            out.append((min(t0, end), max(values) if peak else values[-1]))
    return tuple(out)


def _marks(
    last_action: Iterable[Mapping[str, Any]],
    error: Iterable[Mapping[str, Any]],
    start: datetime,
) -> tuple[Mark, ...]:
    marks: list[Mark] = []
    power: float | None = None
    for row in last_action:
        at, text = parse_timestamp(row.get("last_changed")), parse_state(row.get("state"))
        if at is None or text is None:
            continue
        kind, power = action_kind(text, power)
        if kind is not None and at >= start:
            marks.append(Mark(at, kind, text))
    faulted: bool | None = None
    for row in error:
        at, text = parse_timestamp(row.get("last_changed")), parse_state(row.get("state"))
        if at is None or text is None:
            continue
        fault = text.lower() not in NO_FAULT
        if at >= start and faulted is not None and fault != faulted:
            marks.append(Mark(at, ActionKind.FAULT if fault else ActionKind.CLEARED, text))
        faulted = fault
    return tuple(sorted(marks, key=lambda m: m.at))


def chart_data(
    history: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    entities: Mapping[str, str | None],
    export_positive: bool,
    limit_w: float,
    deadband_w: float,
    now: datetime,
    window: timedelta,
) -> ChartData:
    """Series and marks from HA's history rows.

    Args:
        history: entity id -> its history rows, oldest first.
        entities: role -> entity id: ``grid`` (required), ``battery``,
            ``last_action``, ``error`` (None: not drawn).
        export_positive: the grid sensor reads export as positive.
        limit_w, deadband_w: the guard's limits.
        now: end of the window (tz-aware).
        window: its length.
    """
    start = now - window

    def rows(role: str) -> Sequence[Mapping[str, Any]]:
        entity = entities.get(role)
        return history.get(entity, ()) if entity else ()

    export = _points(rows("grid"), 1.0 if export_positive else -1.0)
    battery = _points(rows("battery"), 1.0)
    return ChartData(
        start=start,
        end=now,
        export_w=_bucketed(export, start, now, peak=True),
        battery_w=_bucketed(battery, start, now, peak=False) if battery else (),
        limit_w=limit_w,
        deadband_w=deadband_w,
        marks=_marks(rows("last_action"), rows("error"), start),
    )


def _value_at(series: Sequence[tuple[datetime, float | None]], at: datetime) -> float:
    before = [v for t, v in series if t <= at and v is not None]
    return before[-1] if before else 0.0


def render_svg(data: ChartData, zone: tzinfo, *, width: int = 1100, height: int = 420) -> str:
    """The chart as an SVG document (times in ``zone``).

    Args:
        data: what to draw.
        zone: the time zone of the axis labels (HA's).
        width, height: the SVG's size in pixels (it scales to its frame).
    """

    def local(t: datetime) -> datetime:
        # pygal formats naive datetimes as they are: hand it wall-clock time.
        return t.astimezone(zone).replace(tzinfo=None)

    by_kind: dict[ActionKind, list[Mark]] = {}
    for mark in data.marks:
        by_kind.setdefault(mark.kind, []).append(mark)
    kinds = [kind for kind in ActionKind if kind in by_kind]
    chart = pygal.DateTimeLine(
        width=width,
        height=height,
        style=_style(kinds),
        show_dots=False,
        legend_at_bottom=True,
        legend_at_bottom_columns=6,
        # pygal lays the legend out one row short with large type: room for the second.
        margin_bottom=30,
        x_value_formatter=lambda t: t.strftime("%H:%M"),
        x_label_rotation=0,
        show_x_guides=False,
        show_y_guides=True,
        truncate_legend=-1,
        js=(),  # no script from the internet: a wall tablet may be offline
        allow_interruptions=True,
        title=f"Grid export against the limit, last {_window_text(data.end - data.start)}",
        y_title="W",
        no_data_text="no readings in this window",
    )
    ends = [local(data.start), local(data.end)]
    chart.add("Grid export", [(local(t), v) for t, v in data.export_w])
    chart.add("Export limit", [(t, data.limit_w) for t in ends])
    chart.add(
        "Limit - deadband",
        [(t, data.limit_w - data.deadband_w) for t in ends],
        stroke_style={"width": 2, "dasharray": "8, 6"},
    )
    chart.add("Battery discharge", [(local(t), v) for t, v in data.battery_w])
    for kind in kinds:
        marks = by_kind[kind]
        on = data.export_w if kind in (ActionKind.FAULT, ActionKind.CLEARED) else data.battery_w
        chart.add(
            kind.value.capitalize(),
            [{"value": (local(m.at), _value_at(on, m.at)), "label": m.text} for m in marks],
            stroke=False,
            show_dots=True,
            dots_size=9,
        )
    svg: bytes = chart.render()
    return svg.decode("utf-8")


def _window_text(window: timedelta) -> str:
    minutes = round(window.total_seconds() / 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} min"
