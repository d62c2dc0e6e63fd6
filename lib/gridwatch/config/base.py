"""Loading an app's ``apps.yaml`` entry into a frozen dataclass.

Every Gridwatch app declares one marshmallow schema (subclass
:class:`ConfigSchema`, set ``config_class``) and calls :func:`load_config`.
Bad config never half-runs an app: :class:`ConfigError` lists EVERY bad key
at once, why it is bad, and an example of a good value taken from the
field's ``metadata={"example": ...}``.

Example::

    @dataclass(frozen=True)
    class GuardConfig:
        export_limit_w: float

    class GuardSchema(ConfigSchema):
        config_class = GuardConfig
        export_limit_w = fields.Float(
            required=True, metadata={"example": 3680, "description": "grid export limit"}
        )

    config = load_config(GuardSchema, self.args, into=GuardConfig)

Field metadata understood here:
    ``example``: a valid value, shown in error messages (required by the
        tests of each schema: every field has one).
    ``secret``: True for passwords/tokens; their values never appear in
        messages.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar, overload

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from gridwatch.hass.states import parse_decimal

T = TypeVar("T")

# Keys AppDaemon 4.5.13 itself reads from an app's entry (see
# appdaemon/models/config/app.py: BaseApp, AppConfig, GlobalModule; ``name``
# and ``config_path`` are added by AppDaemon). They reach ``self.args`` with
# the app's own options, so they are removed before validation.
APPDAEMON_KEYS: Final = frozenset(
    {
        "name",
        "config_path",
        "module",
        "class",
        "priority",
        "dependencies",
        "global_dependencies",
        "global",
        "disable",
        "pin_app",
        "pin_thread",
        "log",
        "log_level",
        # Not in 4.5.13's model, but found in older configs; never an app option.
        "plugin",
    }
)
# App-level callback constraints (constrain_input_boolean, constrain_days,
# constrain_start_time ...): AppDaemon applies them, the app never sees them.
APPDAEMON_KEY_PREFIX: Final = "constrain_"

# How close a typo must be to a known key to be suggested (difflib ratio).
_SUGGEST_CUTOFF: Final = 0.6
# Long values are cut in messages: the point is to recognise the value.
_MAX_VALUE_REPR: Final = 60


@dataclass(frozen=True)
class ConfigProblem:
    """One bad key.

    Attributes:
        key: dotted path, e.g. ``meters[1].entity_id``.
        why: what is wrong, in words.
        example: a valid ``key: value`` line, or ``None`` if the schema has none.
    """

    key: str
    why: str
    example: str | None = None

    def __str__(self) -> str:
        text = f"{self.key}: {self.why}"
        if not self.example:
            return text
        sep = " " if text.endswith(("?", ".", "!")) else ". "
        return f"{text}{sep}Example: {self.example}"


class ConfigError(Exception):
    """An app's configuration is invalid; the message lists every problem.

    Args:
        app_name: the app whose entry is bad.
        problems: every bad key found.
    """

    def __init__(
        self, app_name: str, problems: Iterable[ConfigProblem], *, unchecked: bool = False
    ) -> None:
        self.app_name = app_name
        self.problems = tuple(problems)
        # True when validation let the entry through and building the config
        # from it failed: a schema that misses a check (the fuzz tests assert
        # this never happens); the user still gets this error, not a traceback.
        self.unchecked = unchecked
        lines = [
            f"Gridwatch: {app_name} configuration error "
            f"({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}) "
            "- the app is not running until apps.yaml is fixed:"
        ]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))

    @property
    def keys(self) -> tuple[str, ...]:
        """The bad keys, in report order."""
        return tuple(p.key for p in self.problems)


class ConfigSchema(Schema):
    """Base of every app schema: unknown keys are errors, the result is frozen.

    Subclasses set ``config_class`` to a frozen dataclass whose fields match
    the schema's attribute names; nested schemas do the same.
    """

    config_class: ClassVar[type[Any] | None] = None

    class Meta:
        unknown = RAISE

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> Any:
        cls = type(self).config_class
        return data if cls is None else cls(**data)


class DecimalFloat(fields.Float):
    """A float option that, written as text in apps.yaml, must be ASCII
    decimal notation: ``float()`` alone would read ``"١٢٣"`` as 123 and
    ``"1_0.5"`` as 10.5 (see :func:`gridwatch.hass.states.parse_decimal`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and parse_decimal(value) is None:
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class DecimalInteger(fields.Integer):
    """An integer option that, written as text, must be ASCII digits."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and _ASCII_INTEGER.fullmatch(value.strip(" \t")) is None:
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


_ASCII_INTEGER: Final = re.compile(r"[+-]?[0-9]+")


def bounded_float(
    default: float | None,
    low: float,
    high: float,
    *,
    example: float,
    description: str | None = None,
) -> DecimalFloat:
    """An optional float option within ``[low, high]`` (NaN refused: it
    passes any range check, since it compares false with everything)."""
    return DecimalFloat(
        load_default=default,
        validate=validate.Range(min=low, max=high),
        allow_nan=False,
        metadata=_described(example, description),
    )


def bounded_int(
    default: int | None, low: int, high: int, *, example: int, description: str | None = None
) -> DecimalInteger:
    """An optional integer option within ``[low, high]``."""
    return DecimalInteger(
        load_default=default,
        validate=validate.Range(min=low, max=high),
        metadata=_described(example, description),
    )


def host_field(example: str, description: str) -> fields.String:
    """A required host name or address option (never empty)."""
    return fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"example": example, "description": description},
    )


def tcp_port_field(default: int, description: str) -> DecimalInteger:
    """A TCP port option in 1..65535; its default is also its example."""
    return bounded_int(default, 1, 65535, example=default, description=description)


def _described(example: Any, description: str | None) -> dict[str, Any]:
    return (
        {"example": example}
        if description is None
        else {
            "example": example,
            "description": description,
        }
    )


def event_type_field(default: str, description: str) -> fields.String:
    """An HA event type option (``gridwatch_energy_tally_refresh``).

    HA event types are lowercase words joined by ``_``; anything else would
    never match what an automation fires.
    """
    return fields.String(
        load_default=default,
        validate=validate.Regexp(r"^[a-z0-9_]+$", error="an event type is lowercase_words"),
        metadata={"example": default, "description": description},
    )


def app_options(args: Mapping[str, Any]) -> dict[str, Any]:
    """The app's own options: ``args`` without AppDaemon's keys.

    Args:
        args: ``self.args`` of an AppDaemon app.
    """
    return {
        k: v
        for k, v in args.items()
        if k not in APPDAEMON_KEYS and not str(k).startswith(APPDAEMON_KEY_PREFIX)
    }


@overload
def load_config(
    schema: Schema | type[Schema], args: Mapping[str, Any], *, into: type[T], app_name: str = ...
) -> T: ...
@overload
def load_config(
    schema: Schema | type[Schema], args: Mapping[str, Any], *, app_name: str = ...
) -> Any: ...
def load_config(
    schema: Schema | type[Schema],
    args: Mapping[str, Any],
    *,
    into: type[Any] | None = None,
    app_name: str | None = None,
) -> Any:
    """Validate an app's ``apps.yaml`` entry.

    Args:
        schema: the app's schema (class or instance).
        args: the app's ``self.args`` (AppDaemon keys are dropped here).
        into: the expected result type (checked; gives the caller a typed value).
        app_name: for the error message (default: ``args["name"]``).

    Returns:
        What the schema's ``@post_load`` built (a frozen dataclass).

    Raises:
        ConfigError: naming every bad key, why, and an example (or, for a
            value only the building of the config refuses, the reason).
    """
    name = app_name or str(args.get("name", "app"))
    inst = schema() if isinstance(schema, type) else schema
    options = app_options(args)
    try:
        result = inst.load(options, unknown=RAISE)
    except ValidationError as err:
        raise ConfigError(name, _problems(inst, err.messages, options)) from None
    except (ValueError, TypeError, ArithmeticError, LookupError) as err:
        # A value the schema's checks let through, refused while building the
        # config (a dataclass __post_init__, a range, a lookup): still one
        # ConfigError for the user, never a traceback from the app's start.
        problem = ConfigProblem("(entry)", f"a value is invalid: {err}")
        raise ConfigError(name, [problem], unchecked=True) from err
    if into is not None and not isinstance(result, into):
        raise TypeError(
            f"{type(inst).__name__} built {type(result).__name__}, expected {into.__name__}"
        )
    return result


# --- error translation -------------------------------------------------------


def _problems(schema: Schema, messages: Any, data: Any) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    _walk(schema, messages, data, "", out)
    return out


def _walk(
    schema: Schema | None, messages: Any, data: Any, prefix: str, out: list[ConfigProblem]
) -> None:
    if isinstance(messages, list):
        # Errors of the schema itself (@validates_schema) or of a whole list.
        out.append(ConfigProblem(prefix or "(entry)", _join(messages)))
        return
    if not isinstance(messages, Mapping):
        out.append(ConfigProblem(prefix or "(entry)", str(messages)))
        return
    for key, sub in messages.items():
        if key == "_schema":
            out.append(ConfigProblem(prefix or "(entry)", _join(sub)))
            continue
        path = (
            f"{prefix}[{key}]"
            if isinstance(key, int)
            else (f"{prefix}.{key}" if prefix else str(key))
        )
        value = _get(data, key)
        if isinstance(key, int):
            # A list element: same schema, element data.
            _walk(schema, sub, value, path, out)
            continue
        field = _field(schema, str(key))
        if field is None and schema is not None:
            out.append(_unknown_key(schema, str(key), path))
            continue
        nested = _nested_schema(field)
        if nested is not None and isinstance(sub, Mapping):
            _walk(nested, sub, value, path, out)
            continue
        why = _join(sub)
        if value is not _ABSENT and not _is_secret(field):
            why = f"{why} (got {_short(value)})"
        out.append(ConfigProblem(path, why, _example(field, str(key))))


_ABSENT: Final = object()
# Strings safe to write unquoted in YAML (entity ids, service names, words).
_PLAIN_YAML: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]*$")


def _get(data: Any, key: Any) -> Any:
    if isinstance(data, Mapping):
        return data.get(key, _ABSENT)
    if isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
        return data[key]
    return _ABSENT


def _field(schema: Schema | None, key: str) -> fields.Field[Any] | None:
    if schema is None:
        return None
    for name, field in schema.fields.items():
        if (field.data_key or name) == key:
            return field
    return None


def _nested_schema(field: fields.Field[Any] | None) -> Schema | None:
    if isinstance(field, fields.List):
        field = field.inner
    if isinstance(field, fields.Dict) and field.value_field is not None:
        field = field.value_field
    if isinstance(field, fields.Nested):
        nested = field.schema
        return nested if isinstance(nested, Schema) else None
    return None


def _unknown_key(schema: Schema, key: str, path: str) -> ConfigProblem:
    known = sorted((f.data_key or n) for n, f in schema.fields.items() if not f.dump_only)
    close = difflib.get_close_matches(key, known, n=1, cutoff=_SUGGEST_CUTOFF)
    if close:
        guess = close[0]
        field = _field(schema, guess)
        return ConfigProblem(path, f"unknown key; did you mean '{guess}'?", _example(field, guess))
    return ConfigProblem(path, f"unknown key; valid keys are: {', '.join(known)}")


def _example(field: fields.Field[Any] | None, key: str) -> str | None:
    if field is None or "example" not in field.metadata:
        return None
    return f"{key}: {_yaml_value(field.metadata['example'])}"


def _yaml_value(value: Any) -> str:
    """Render a value as a YAML flow value the user can paste into apps.yaml."""
    if isinstance(value, str) and _PLAIN_YAML.match(value):
        return value
    # JSON is valid YAML flow syntax, and quotes what plain YAML would misread.
    return json.dumps(value, default=str)


def _is_secret(field: fields.Field[Any] | None) -> bool:
    return bool(field is not None and field.metadata.get("secret"))


def _join(messages: Any) -> str:
    if isinstance(messages, list):
        return " ".join(str(m).rstrip(".") + "." for m in messages).rstrip(".")
    return str(messages).rstrip(".")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 3] + "..."
