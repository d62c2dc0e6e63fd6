"""The export guard's chart, served by AppDaemon's own web server.

AppDaemon 4.5 lets an app register an HTTP route (``register_route``):
``http://<appdaemon>:5050/app/<app name>_chart`` answers with the SVG of
:mod:`gridwatch.guard.export_chart`, drawn from Home Assistant's history
(``/api/history/period``, through AppDaemon's ``get_history``) of the guard's
own entities. The panel shows it in an ``iframe`` widget.

``?minutes=N`` picks the window (default 60, 5-1440). Answers are kept for
:data:`CACHE_S` so several tablets refreshing at once cost one history read.
AppDaemon clears the route when the app stops.

Protection: AppDaemon 4.5.13 never asks for its ``http: password`` on
``/app/`` routes (its ``route_secure`` checks a token list that no option
fills), so the chart checks the password itself, as AppDaemon's own pages
do: the ``adcreds`` cookie its login form sets (a bcrypt hash of the
password), or the ``x-ad-access`` header its API takes. Without a password
configured the chart is open, like the panel.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

import bcrypt
from aiohttp import web
from appdaemon.adapi import ADAPI

from gridwatch.guard.config import GuardConfig
from gridwatch.guard.entities import entity_ids
from gridwatch.guard.export_chart import chart_data, render_svg
from gridwatch.guard.readings import GridSign

DEFAULT_MINUTES: Final = 60
MIN_MINUTES: Final = 5
MAX_MINUTES: Final = 1440
CACHE_S: Final = 5.0
# Windows kept (an SVG is ~40 kB): the panels of a home ask for one or two.
CACHE_ENTRIES: Final = 4
# HA reads a day of a 1-second meter in a few seconds; longer is a failure.
HISTORY_TIMEOUT_S: Final = 20.0
SVG_TYPE: Final = "image/svg+xml"


def route_name(app_name: str) -> str:
    """The route of an app's chart: ``/app/<route_name>``."""
    return f"{app_name}_chart"


def parse_minutes(query: Mapping[str, str]) -> int:
    """The window asked for in ``?minutes=``.

    Raises:
        ValueError: not a whole number within [MIN_MINUTES, MAX_MINUTES].
    """
    raw = query.get("minutes")
    if raw is None:
        return DEFAULT_MINUTES
    if not raw.isascii() or not raw.isdigit() or not MIN_MINUTES <= int(raw) <= MAX_MINUTES:
        raise ValueError(f"minutes must be a whole number from {MIN_MINUTES} to {MAX_MINUTES}")
    return int(raw)


def history_by_entity(
    answer: Sequence[Sequence[Mapping[str, Any]]] | None,
) -> dict[str, Sequence[Mapping[str, Any]]]:
    """HA's history answer (a list per entity) keyed by entity id.

    With ``minimal_response`` only each list's first row names its entity.
    """
    out: dict[str, Sequence[Mapping[str, Any]]] = {}
    for rows in answer or ():
        if rows and isinstance(rows[0], Mapping) and isinstance(rows[0].get("entity_id"), str):
            out[rows[0]["entity_id"]] = rows
    return out


def credentials_match(password: str, header: str | None, cookie: str | None) -> bool:
    """True when a request carries AppDaemon's password (header) or its login cookie.

    Blocking (bcrypt): call it in a worker thread.
    """
    if header is not None and hmac.compare_digest(header.encode(), password.encode()):
        return True
    if not cookie:
        return False
    try:
        return bcrypt.checkpw(password.encode(), cookie.encode())
    except ValueError:  # not a bcrypt hash at all
        return False


class ChartUnavailable(RuntimeError):
    """The chart cannot be drawn now (no HA connection)."""


class ExportChartRoute:
    """Serves one guard's chart.

    Args:
        app: the guard's AppDaemon app.
        config: its validated configuration.
        prefix: its entity id prefix (the app's name, slugged).
        logger: the app's logger.
    """

    def __init__(
        self, app: ADAPI, config: GuardConfig, prefix: str, logger: logging.Logger
    ) -> None:
        self._app = app
        self._logger = logger
        ids = entity_ids(prefix)
        self._roles: dict[str, str | None] = {
            "grid": config.entities["grid_power"],
            "battery": config.entities.get("battery_power"),
            "last_action": ids["last_action"],
            "error": ids["error"],
        }
        self._settings = config.guard
        self._cache: dict[int, tuple[float, str]] = {}

    async def register(self, name: str) -> None:
        """Register ``/app/<name>_chart`` with AppDaemon's web server.

        Without AppDaemon's ``http:`` component there is no web server (and
        no panel): the chart is off, said once, and the guard runs as ever.
        """
        if getattr(self._app.AD, "http", None) is None:
            self._logger.info("no http: section in appdaemon.yaml: the export chart is not served")
            return
        handle: Any = self._app.register_route(self.serve, route_name(name))
        if inspect.isawaitable(handle):  # a task inside async code (AppDaemon 4.5)
            await handle

    async def serve(self, request: web.Request, kwargs: Mapping[str, Any]) -> web.Response:
        """The route's handler: the SVG, or a short text saying what went wrong."""
        password = getattr(getattr(self._app.AD, "http", None), "password", None)
        if isinstance(password, str) and not await asyncio.to_thread(
            credentials_match,
            password,
            request.headers.get("x-ad-access"),
            request.cookies.get("adcreds"),
        ):
            return web.Response(status=401, text="Unauthorized: log in to AppDaemon first")
        try:
            minutes = parse_minutes(request.query)
        except ValueError as err:
            return web.Response(status=400, text=str(err))
        cached = self._cache.get(minutes)
        if cached is not None and time.monotonic() - cached[0] < CACHE_S:
            return self._svg(cached[1])
        try:
            svg = await self.render(minutes)
        except TimeoutError:
            self._logger.warning("chart: Home Assistant's history did not answer in time")
            return web.Response(status=503, text="Home Assistant's history did not answer")
        except ChartUnavailable as err:
            return web.Response(status=503, text=str(err))
        if len(self._cache) >= CACHE_ENTRIES:  # a few windows are in use, not 1436
            self._cache.pop(min(self._cache, key=lambda k: self._cache[k][0]))
        self._cache[minutes] = (time.monotonic(), svg)
        return self._svg(svg)

    async def render(self, minutes: int) -> str:
        """Read the window's history from HA and draw it."""
        now = datetime.now(UTC)
        window = timedelta(minutes=minutes)
        entities = [e for e in self._roles.values() if e]
        # The HASS plugin's own history read (ADAPI has no get_history; the
        # Hass API's is this call).
        plugin = self._app.AD.plugins.get_plugin_object(self._app.namespace)
        if plugin is None or not hasattr(plugin, "get_history"):
            raise ChartUnavailable("no Home Assistant plugin connected")
        async with asyncio.timeout(HISTORY_TIMEOUT_S):
            answer = await plugin.get_history(
                filter_entity_id=entities,
                timestamp=now - window,
                minimal_response=True,
                no_attributes=True,
            )
        data = chart_data(
            history_by_entity(answer),
            entities=self._roles,
            export_positive=self._settings.grid_sign is GridSign.EXPORT_POSITIVE,
            limit_w=self._settings.export_limit_w,
            deadband_w=self._settings.deadband_w,
            now=now,
            window=window,
        )
        zone: tzinfo = self._app.AD.tz  # AppDaemon's zone (HA's, in the demo)
        # Pure and CPU-bound (~0.1 s): off the event loop.
        return await asyncio.to_thread(render_svg, data, zone)

    @staticmethod
    def _svg(svg: str) -> web.Response:
        return web.Response(text=svg, content_type=SVG_TYPE, headers={"Cache-Control": "no-store"})
