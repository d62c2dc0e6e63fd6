"""Configuration of the energy tally app (``apps.yaml``).

Example::

    energy_tally:
      module: gridwatch_energy_tally
      class: EnergyTally
      meters:
        - statistic_id: sensor.grid_import_energy
          name: Grid import
          role: import
        - statistic_id: sensor.inverter_energy_wh
          name: PV
          role: pv
          unit: Wh
      interval_s: 300
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from gridwatch.config.base import (
    ConfigSchema,
    DecimalFloat,
    DecimalInteger,
    bounded_float,
    bounded_int,
    event_type_field,
)
from gridwatch.energy.month_cache import DEFAULT_RECHECK_DAYS
from gridwatch.energy.settings import (
    DEFAULT_REFRESH_EVENT,
    DEFAULT_RESET_TOLERANCE_KWH,
    EnergyTallyConfig,
)
from gridwatch.energy.tally import Meter, Role
from gridwatch.energy.units import EnergyUnit
from gridwatch.hass.states import slugify

__all__ = ["DEFAULT_REFRESH_EVENT", "EnergyTallyConfig", "EnergyTallySchema", "MeterSchema"]

# Entity ids (sensor.x) and external statistic ids (domain:x) are both valid
# recorder statistic ids.
_STATISTIC_ID = re.compile(r"^[a-z0-9_]+[.:][a-z0-9_]+$")


class MeterSchema(ConfigSchema):
    """One meter entry."""

    config_class: ClassVar[type[Any] | None] = None

    statistic_id = fields.String(
        required=True,
        validate=validate.Regexp(_STATISTIC_ID, error="not a statistic id (sensor.x or domain:x)"),
        metadata={
            "example": "sensor.grid_import_energy",
            "description": "the recorder statistic, usually the HA energy sensor",
        },
    )
    name = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={
            "example": "Grid import",
            "description": "display name; its slug names the entities",
        },
    )
    role = fields.Enum(
        Role,
        by_value=True,
        load_default=None,
        metadata={"example": "import", "description": "which site total it counts in"},
    )
    unit = fields.Enum(
        EnergyUnit,
        by_value=True,
        load_default=EnergyUnit.KWH,
        metadata={
            "example": "Wh",
            "description": "unit of the recorded values; used only with request_units: false",
        },
    )

    @validates_schema
    def _name_has_slug(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "name" in data and not slugify(data["name"]):
            raise ValidationError("needs letters or digits to name entities", "name")

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> Any:
        return Meter(
            statistic_id=data["statistic_id"],
            name=data["name"],
            slug=slugify(data["name"]),
            role=data["role"],
            unit=data["unit"],
        )


class EnergyTallySchema(ConfigSchema):
    """The energy tally's ``apps.yaml`` entry."""

    config_class = EnergyTallyConfig

    meters = fields.List(
        fields.Nested(MeterSchema),
        required=True,
        validate=validate.Length(min=1, error="list at least one meter"),
        metadata={
            "example": [{"statistic_id": "sensor.grid_import_energy", "name": "Grid import"}],
            "description": "energy meters to tally",
        },
    )
    interval_s = DecimalFloat(
        load_default=300.0,
        # Hourly statistics change once an hour; faster than every 30 s only
        # loads the recorder.
        validate=validate.Range(min=30, max=3600),
        metadata={"example": 300, "description": "seconds between cycles"},
    )
    refresh_event = event_type_field(DEFAULT_REFRESH_EVENT, "HA event forcing a cycle")
    failure_threshold = bounded_int(
        3, 1, 100, example=3, description="failed cycles in a row before an alert"
    )
    request_units = fields.Boolean(
        load_default=True,
        metadata={"example": True, "description": "ask the recorder for kWh"},
    )
    query_timeout_s = bounded_float(
        15.0, 1, 120, example=15, description="timeout of each statistics request"
    )
    time_zone = fields.String(
        load_default=None,
        metadata={
            "example": "Europe/Berlin",
            "description": "must equal HA's time zone (the recorder groups days in it); "
            "leave it out to use HA's",
        },
    )
    recheck_days = DecimalInteger(
        load_default=DEFAULT_RECHECK_DAYS,
        # Each recheck re-reads N days x 24 hourly rows of every meter (split
        # into requests under AppDaemon's 4 MiB message cap); 4 days is
        # beyond any import delay seen and bounds the hourly cost.
        validate=validate.Range(min=1, max=4),
        metadata={
            "example": 2,
            "description": "complete days re-read hour by hour once an hour (late statistics)",
        },
    )

    reset_tolerance_kwh = bounded_float(
        DEFAULT_RESET_TOLERANCE_KWH,
        0,
        1,
        example=0.001,
        description="a sum stepping back by up to this many kWh is rounding, not a meter reset",
    )

    @validates_schema
    def _check(self, data: dict[str, Any], **_kwargs: Any) -> None:
        # Collect every problem so the user fixes apps.yaml in one go.
        errors: dict[str, list[str]] = {}
        zone = data.get("time_zone")
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                errors.setdefault("time_zone", []).append(f"unknown time zone {zone!r}")
        meters: list[Meter] = data.get("meters") or []
        for attr, what in (("statistic_id", "statistic id"), ("slug", "name")):
            seen: set[str] = set()
            for meter in meters:
                value = getattr(meter, attr)
                if value in seen:
                    errors.setdefault("meters", []).append(
                        f"{what} {value!r} is listed twice; list each meter once"
                    )
                seen.add(value)
        if errors:
            raise ValidationError(errors)

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> Any:
        data["meters"] = tuple(data["meters"])
        return EnergyTallyConfig(**data)
