"""The export guard's ``apps.yaml`` schema.

Example entry::

    export_guard:
      module: gridwatch_export_guard
      class: ExportGuard
      dry_run: true                 # decide and publish, touch nothing
      export_limit_w: 3680
      deadband_w: 100
      daily_export_cap_kwh: 20
      cap_margin_kwh: 0.2
      min_soc_pct: 15
      max_discharge_w: 5000
      readings:
        grid_power: {entity: sensor.grid_power}          # import positive
        soc: {entity: sensor.battery_soc, max_age_s: 900}
        export_today: {entity: sensor.grid_export_today, max_age_s: 900}
      grid_sign: import_positive    # HA's convention; or export_positive
      actuators:
        enable: {entity: input_boolean.battery_discharge}
        power: {entity: input_number.battery_discharge_power}
        cutoff_soc: {entity: input_number.battery_cutoff_soc}     # optional
        duration:                                                # optional
          entity: input_number.battery_discharge_minutes
          counts_from: write        # the inverter's timer restarts at each write; or start
      request_entity: input_boolean.battery_discharge_request  # optional
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from gridwatch.config.base import (
    ConfigSchema,
    DecimalFloat,
    bounded_float,
    bounded_int,
    event_type_field,
)
from gridwatch.guard.actuators import (
    DurationActuator,
    SwitchActuator,
    TimerCounts,
    ValueActuator,
)
from gridwatch.guard.config import DEFAULT_EVENT, GuardConfig
from gridwatch.guard.decisions import GuardSettings
from gridwatch.guard.readings import GridSign, ReadingSpec, ReadingSpecs
from gridwatch.safety.staleness import DEFAULT_MAX_AGE_S
from gridwatch.safety.validation import ENERGY_RANGE, POWER_RANGE, SOC_RANGE, Range
from gridwatch.safety.verified_call import VerifyPolicy

__all__ = [
    "DEFAULT_EVENT",
    "ExportGuardConfig",
    "ExportGuardSchema",
    "SwitchActuator",
    "ValueActuator",
]

_ENTITY: Final = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_SERVICE: Final = re.compile(r"^[a-z0-9_]+[./][a-z0-9_]+$")
_VALUE_DOMAINS: Final = {"input_number": "set_value", "number": "set_value"}
_SWITCH_DOMAINS: Final = frozenset({"input_boolean", "switch"})
# The inverter's ramp: a settle time is two meter periods plus this.
_RAMP_S: Final = 1.0

ExportGuardConfig = GuardConfig


def _entity(example: str, description: str, **kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(_ENTITY, error="not an entity id (domain.object_id)"),
        metadata={"example": example, "description": description},
        **kwargs,
    )


def _service(example: str, description: str) -> fields.String:
    return fields.String(
        load_default=None,
        validate=validate.Regexp(_SERVICE, error="not a service (domain/service)"),
        metadata={"example": example, "description": description},
    )


class ReadingSchema(ConfigSchema):
    """One reading: its entity, and optionally its age limit and range."""

    config_class: ClassVar[type[Any] | None] = None

    entity = _entity("sensor.grid_power", "the entity providing the reading", required=True)
    max_age_s = DecimalFloat(
        load_default=DEFAULT_MAX_AGE_S,
        validate=validate.Range(min=1, max=86400),
        metadata={
            "example": 900,
            "description": "stale after this many seconds without an update; HA reports "
            "only changes, so slow sensors (SoC, energy) need more than 30",
        },
    )
    min = DecimalFloat(
        load_default=None,
        allow_nan=False,
        metadata={"example": -20000, "description": "lowest plausible value"},
    )
    max = DecimalFloat(
        load_default=None,
        allow_nan=False,
        metadata={"example": 20000, "description": "highest plausible value"},
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        low, high = data.get("min"), data.get("max")
        if low is not None and high is not None and low > high:
            raise ValidationError(f"min {low} is above max {high}", "min")


_DEFAULT_RANGES: dict[str, Range] = {
    "grid_power": POWER_RANGE,
    "soc": SOC_RANGE,
    "export_today": ENERGY_RANGE,
    "pv_power": POWER_RANGE,
    "battery_power": POWER_RANGE,
}


def _effective_range(entry: dict[str, Any], bounds: Range) -> tuple[float, float]:
    """The reading's bounds: each given one, else the default's."""
    low = bounds.low if entry.get("min") is None else entry["min"]
    high = bounds.high if entry.get("max") is None else entry["max"]
    return low, high


class ReadingsSchema(ConfigSchema):
    """The guard's readings."""

    config_class: ClassVar[type[Any] | None] = None

    grid_power = fields.Nested(
        ReadingSchema,
        required=True,
        metadata={"example": {"entity": "sensor.grid_power"}, "description": "grid power, W"},
    )
    soc = fields.Nested(
        ReadingSchema,
        required=True,
        metadata={"example": {"entity": "sensor.battery_soc", "max_age_s": 900}},
    )
    export_today = fields.Nested(
        ReadingSchema,
        required=True,
        metadata={"example": {"entity": "sensor.grid_export_today", "max_age_s": 900}},
    )
    pv_power = fields.Nested(
        ReadingSchema,
        load_default=None,
        metadata={"example": {"entity": "sensor.pv_power"}, "description": "optional, shown only"},
    )
    battery_power = fields.Nested(
        ReadingSchema,
        load_default=None,
        metadata={
            "example": {"entity": "sensor.battery_power"},
            "description": "optional: measured battery power, W, discharge positive",
        },
    )

    @validates_schema
    def _ranges(self, data: dict[str, Any], **_kwargs: Any) -> None:
        # One bound given, the other from the default: "soc: {min: 150}"
        # must be an error here, not a ValueError from Range at post_load.
        errors: dict[str, dict[str, list[str]]] = {}
        for name, bounds in _DEFAULT_RANGES.items():
            entry = data.get(name)
            if entry is None:
                continue
            low, high = _effective_range(entry, bounds)
            if low > high:
                key = "min" if entry.get("min") is not None else "max"
                errors[name] = {
                    key: [
                        f"gives the range {low:g}..{high:g} {bounds.unit}, which is empty "
                        f"(the default range is {bounds.low:g}..{bounds.high:g})"
                    ]
                }
        if errors:
            raise ValidationError(errors)


class SwitchSchema(ConfigSchema):
    """The discharge enable actuator."""

    config_class: ClassVar[type[Any] | None] = None

    entity = _entity(
        "input_boolean.battery_discharge", "turned on/off and read back", required=True
    )
    on_service = _service("switch/turn_on", "default: <domain>/turn_on")
    off_service = _service("switch/turn_off", "default: <domain>/turn_off")

    @validates_schema
    def _services_known(self, data: dict[str, Any], **_kwargs: Any) -> None:
        domain = str(data.get("entity", "")).partition(".")[0]
        if domain not in _SWITCH_DOMAINS and not (
            data.get("on_service") and data.get("off_service")
        ):
            raise ValidationError(
                f"{domain} entities need on_service and off_service", "on_service"
            )

    @post_load
    def _make(self, data: dict[str, Any], **_kwargs: Any) -> SwitchActuator:
        domain = data["entity"].partition(".")[0]
        return SwitchActuator(
            entity=data["entity"],
            on_service=_slash(data["on_service"] or f"{domain}/turn_on"),
            off_service=_slash(data["off_service"] or f"{domain}/turn_off"),
        )


class ValueSchema(ConfigSchema):
    """A numeric actuator."""

    config_class: ClassVar[type[Any] | None] = None

    entity = _entity("input_number.battery_discharge_power", "set and read back", required=True)
    service = _service("number/set_value", "default: <domain>/set_value")
    tolerance = DecimalFloat(
        load_default=1.0,
        validate=validate.Range(min=0),
        metadata={"example": 10, "description": "read-back within this counts as set"},
    )

    @validates_schema
    def _service_known(self, data: dict[str, Any], **_kwargs: Any) -> None:
        domain = str(data.get("entity", "")).partition(".")[0]
        if domain not in _VALUE_DOMAINS and not data.get("service"):
            raise ValidationError(f"{domain} entities need a service", "service")

    @post_load
    def _make(self, data: dict[str, Any], **_kwargs: Any) -> ValueActuator:
        domain = data["entity"].partition(".")[0]
        service = data["service"] or f"{domain}/{_VALUE_DOMAINS.get(domain, 'set_value')}"
        return ValueActuator(data["entity"], _slash(service), data["tolerance"])


class DurationSchema(ValueSchema):
    """The discharge duration actuator (minutes), and how its timer counts."""

    counts_from = fields.Enum(
        TimerCounts,
        by_value=True,
        load_default=TimerCounts.FROM_WRITE,
        metadata={
            "example": "write",
            "description": "write: the inverter's timer restarts at each write (most "
            "remote-control timeouts); start: it counts from the discharge's start",
        },
    )

    @post_load
    def _make(self, data: dict[str, Any], **_kwargs: Any) -> DurationActuator:
        domain = data["entity"].partition(".")[0]
        service = data["service"] or f"{domain}/{_VALUE_DOMAINS.get(domain, 'set_value')}"
        return DurationActuator(
            data["entity"], _slash(service), data["tolerance"], data["counts_from"]
        )


class ActuatorsSchema(ConfigSchema):
    """The actuators the guard drives."""

    config_class: ClassVar[type[Any] | None] = None

    enable = fields.Nested(
        SwitchSchema,
        required=True,
        metadata={"example": {"entity": "input_boolean.battery_discharge"}},
    )
    power = fields.Nested(
        ValueSchema,
        required=True,
        metadata={"example": {"entity": "input_number.battery_discharge_power"}},
    )
    cutoff_soc = fields.Nested(
        ValueSchema,
        load_default=None,
        metadata={"example": {"entity": "input_number.battery_cutoff_soc"}},
    )
    duration = fields.Nested(
        DurationSchema,
        load_default=None,
        metadata={"example": {"entity": "input_number.battery_discharge_minutes"}},
    )


def _slash(service: str) -> str:
    return service.replace(".", "/", 1)


def _positive(example: float, description: str, **kwargs: Any) -> DecimalFloat:
    return DecimalFloat(
        validate=validate.Range(min=0, min_inclusive=False),
        allow_nan=False,
        metadata={"example": example, "description": description},
        **kwargs,
    )


def _non_negative(default: float, example: float, description: str) -> DecimalFloat:
    return DecimalFloat(
        load_default=default,
        validate=validate.Range(min=0),
        allow_nan=False,
        metadata={"example": example, "description": description},
    )


class ExportGuardSchema(ConfigSchema):
    """Validates the export guard entry; builds :class:`ExportGuardConfig`."""

    export_limit_w = _positive(3680, "grid export power limit, W", required=True)
    deadband_w = _non_negative(100.0, 100, "regulate this far below the limit, W")
    daily_export_cap_kwh = _positive(20, "daily export energy cap, kWh", required=True)
    cap_margin_kwh = _non_negative(0.2, 0.2, "kept free below the daily cap, kWh")
    min_soc_pct = bounded_float(
        10.0, 0, 100, example=15, description="discharge stops at this SoC, %"
    )
    soc_hysteresis_pct = _non_negative(2.0, 2, "a restart needs SoC this far above the minimum")
    max_discharge_w = _positive(5000, "most discharge power ever commanded, W", required=True)
    min_discharge_w = DecimalFloat(
        load_default=100.0,
        validate=validate.Range(min=0, min_inclusive=False, max=1e6),
        allow_nan=False,
        metadata={"example": 100, "description": "less headroom than this stops the discharge, W"},
    )
    grid_sign = fields.Enum(
        GridSign,
        by_value=True,
        load_default=GridSign.IMPORT_POSITIVE,
        metadata={"example": "import_positive", "description": "sign of export on the grid sensor"},
    )
    readings = fields.Nested(
        ReadingsSchema,
        required=True,
        metadata={
            "example": {
                "grid_power": {"entity": "sensor.grid_power"},
                "soc": {"entity": "sensor.battery_soc", "max_age_s": 900},
                "export_today": {"entity": "sensor.grid_export_today", "max_age_s": 900},
            }
        },
    )
    actuators = fields.Nested(
        ActuatorsSchema,
        required=True,
        metadata={
            "example": {
                "enable": {"entity": "input_boolean.battery_discharge"},
                "power": {"entity": "input_number.battery_discharge_power"},
            }
        },
    )
    request_entity = _entity(
        "input_boolean.battery_discharge_request",
        "on requests a discharge, off stops it",
        load_default=None,
    )
    event = event_type_field(DEFAULT_EVENT, "HA event carrying requests")
    tick_s = bounded_float(5.0, 1, 60, example=5, description="safety tick period, s")
    dry_run = fields.Boolean(
        load_default=False,
        metadata={"example": True, "description": "decide and publish, touch no actuator"},
    )
    call_timeout_s = bounded_float(5.0, 0.5, 60, example=5)
    verify_within_s = bounded_float(3.0, 0, 60, example=3)
    attempts = bounded_int(3, 1, 10, example=3)
    # Below 1 s a failing stop is retried back to back.
    retry_after_s = bounded_float(5.0, 1, 600, example=5)
    meter_period_s = bounded_float(
        2.0, 0.1, 600, example=2, description="how often the grid meter reports, s"
    )
    settle_s = bounded_float(
        None, 0, 600, example=5, description="default: 2 x meter_period_s + 1 s of ramp"
    )
    max_raise_step_w = bounded_float(
        2000.0, 1, 1e6, example=2000, description="a start or raise moves by at most this, W"
    )
    min_write_interval_s = bounded_float(
        10.0, 0, 3600, example=10, description="raises at most this often (lowering: at once)"
    )
    min_change_w = bounded_float(
        50.0, 0, 1e6, example=50, description="smaller lowerings wait while under the limit"
    )
    request_debounce_s = bounded_float(
        1.0, 0, 60, example=1, description="a start request must stand this long"
    )
    lease_min = bounded_float(
        5.0, 1, 1440, example=5, description="dead-man lease on the duration actuator, min"
    )
    response_fraction = bounded_float(
        0.5, 0.1, 1, example=0.5, description="share of a change the plant must show"
    )
    response_min_w = bounded_float(
        300.0, 0, 1e6, example=300, description="changes this big are checked for a response"
    )
    heartbeat_s = bounded_float(
        30.0, 1, 3600, example=30, description="the heartbeat entity advances this often"
    )
    max_request_min = bounded_float(
        1440.0, 1, 10080, example=1440, description="longest duration_min a request may ask"
    )
    breaker_threshold = bounded_int(5, 1, 100, example=5)
    breaker_reset_s = bounded_float(60.0, 1, 3600, example=60)

    @validates_schema
    def _coherent(self, data: dict[str, Any], **_kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        limit, deadband = data.get("export_limit_w"), data.get("deadband_w")
        if limit is not None and deadband is not None and deadband >= limit:
            errors["deadband_w"] = [f"must be below export_limit_w ({limit:g})"]
        cap, margin = data.get("daily_export_cap_kwh"), data.get("cap_margin_kwh")
        if cap is not None and margin is not None and margin >= cap:
            errors["cap_margin_kwh"] = [f"must be below daily_export_cap_kwh ({cap:g})"]
        settle, period = data.get("settle_s"), data.get("meter_period_s")
        if settle is not None and period is not None and settle < period:
            # Shorter, a reading from before a change would pass for one after it.
            errors["settle_s"] = [f"must be at least meter_period_s ({period:g})"]
        top, bottom = data.get("max_discharge_w"), data.get("min_discharge_w")
        if top is not None and bottom is not None and bottom > top:
            errors["min_discharge_w"] = [f"must not exceed max_discharge_w ({top:g})"]
        # A change smaller than response_min_w is not checked on its own:
        # steps that are all smaller, or a battery that never reaches it,
        # would switch the plant-response check off.
        step, checked = data.get("max_raise_step_w"), data.get("response_min_w")
        if step is not None and checked is not None and step < checked:
            errors["max_raise_step_w"] = [
                f"must be at least response_min_w ({checked:g}): smaller steps are never "
                "checked for a response"
            ]
        if top is not None and checked is not None and checked > top:
            errors["response_min_w"] = [
                f"must not exceed max_discharge_w ({top:g}): no change would be checked"
            ]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> GuardConfig:
        readings: dict[str, Any] = data["readings"]
        specs: dict[str, ReadingSpec] = {}
        entities: dict[str, str] = {}
        for name, bounds in _DEFAULT_RANGES.items():
            entry = readings.get(name)
            if entry is None:
                continue
            low, high = _effective_range(entry, bounds)
            specs[name] = ReadingSpec(Range(low, high, bounds.unit), entry["max_age_s"])
            entities[name] = entry["entity"]
        actuators: dict[str, Any] = data["actuators"]
        guard = GuardSettings(
            export_limit_w=data["export_limit_w"],
            daily_cap_kwh=data["daily_export_cap_kwh"],
            max_discharge_w=data["max_discharge_w"],
            deadband_w=data["deadband_w"],
            margin_kwh=data["cap_margin_kwh"],
            min_soc_pct=data["min_soc_pct"],
            soc_hysteresis_pct=data["soc_hysteresis_pct"],
            min_discharge_w=data["min_discharge_w"],
            retry_after_s=data["retry_after_s"],
            grid_sign=data["grid_sign"],
            specs=ReadingSpecs(**specs),
            settle_s=(
                2 * data["meter_period_s"] + _RAMP_S
                if data["settle_s"] is None
                else data["settle_s"]
            ),
            max_raise_step_w=data["max_raise_step_w"],
            min_write_interval_s=data["min_write_interval_s"],
            min_change_w=data["min_change_w"],
            request_debounce_s=data["request_debounce_s"],
            lease_min=None if actuators["duration"] is None else data["lease_min"],
            power_tolerance_w=actuators["power"].tolerance,
            timer_from_start=(
                actuators["duration"] is not None
                and actuators["duration"].counts_from is TimerCounts.FROM_START
            ),
            response_min_w=data["response_min_w"],
            response_fraction=data["response_fraction"],
        )
        entities["enable"] = actuators["enable"].entity
        return GuardConfig(
            guard=guard,
            entities=entities,
            enable=actuators["enable"],
            power=actuators["power"],
            cutoff_soc=actuators["cutoff_soc"],
            duration=actuators["duration"],
            request_entity=data["request_entity"],
            event=data["event"],
            tick_s=data["tick_s"],
            dry_run=data["dry_run"],
            verify=VerifyPolicy(
                call_timeout_s=data["call_timeout_s"],
                verify_within_s=data["verify_within_s"],
                attempts=data["attempts"],
            ),
            breaker_threshold=data["breaker_threshold"],
            breaker_reset_s=data["breaker_reset_s"],
            heartbeat_s=data["heartbeat_s"],
            max_request_min=data["max_request_min"],
        )
