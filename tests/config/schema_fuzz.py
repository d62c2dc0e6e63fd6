"""Hypothesis strategies that generate ``apps.yaml`` entries for a schema.

Not a test module. The entries are built from the schema itself (its fields,
nesting, validators and examples), so they reach deep into nested blocks and
near the edges the validators draw, where a value can slip past validation
and break the building of the config.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import strategies as st
from marshmallow import Schema, fields, missing, validate

# Values that have broken parsers before: other scripts' digits, underscores,
# special floats, malformed URLs, empty and huge text.
TRICKY_TEXT = [
    "",
    " ",
    "0",
    "-1",
    "1e309",
    "nan",
    "inf",
    "1_0.5",
    "\u0661\u0662\u0663",
    "http://[::1",
    "http://h:99999",
    "http://:80",
    "http://h:0",
    "http://[fe80::1]:8080",
    "https://h/x?y#z",
    "sensor.",
    "sensor.a b",
    "a" * 300,
    "\x00",
    "gw/#/x",
    "+",
    "AA:BB:CC:DD:EE:FF",
    "module:Attr",
    "notify/x",
    "input_number.x",
]
TRICKY_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    0.5,
    -0.0,
    1e-9,
    1e9,
    10**20,
    -(10**20),
    math.inf,
    -math.inf,
    math.nan,
    True,
    False,
]

_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(TRICKY_TEXT),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _near_range(rule: validate.Range) -> st.SearchStrategy[Any]:
    edges: list[Any] = []
    for bound in (rule.min, rule.max):
        if bound is not None:
            edges += [bound, bound - 1, bound + 1, bound - 1e-9, bound + 1e-9]
    options: list[st.SearchStrategy[Any]] = [st.sampled_from(edges)] if edges else []
    if rule.min is not None and rule.max is not None:
        options.append(st.floats(min_value=rule.min, max_value=rule.max))
        options.append(st.integers(min_value=math.ceil(rule.min), max_value=math.floor(rule.max)))
    return st.one_of(options) if options else st.nothing()


def _validators(field: fields.Field[Any]) -> list[Any]:
    return list(getattr(field, "validators", []) or [])


def field_values(field: fields.Field[Any], depth: int) -> st.SearchStrategy[Any]:
    """Values for one field: mostly plausible, sometimes junk."""
    if isinstance(field, fields.Nested):
        nested = field.schema
        assert isinstance(nested, Schema)
        inner = entries(nested, depth + 1)
        return st.one_of(inner, inner, _junk) if not field.many else st.lists(inner, max_size=3)
    if isinstance(field, fields.List):
        return st.one_of(st.lists(field_values(field.inner, depth), max_size=3), _junk)
    if isinstance(field, fields.Dict):
        values = field.value_field
        inner = field_values(values, depth) if values is not None else _junk
        return st.one_of(
            st.dictionaries(st.sampled_from(["a", "b", "x_1", "Bad Key", ""]), inner, max_size=3),
            _junk,
        )
    plausible: list[st.SearchStrategy[Any]] = []
    if "example" in field.metadata:
        plausible.append(st.just(field.metadata["example"]))
    default = field.load_default
    if default is not None and default is not missing and not callable(default):
        plausible.append(st.just(default))
    for rule in _validators(field):
        if isinstance(rule, validate.OneOf):
            plausible.append(st.sampled_from(list(rule.choices)))
        elif isinstance(rule, validate.Range):
            plausible.append(_near_range(rule))
    if isinstance(field, fields.Enum):
        plausible.append(st.sampled_from([m.value for m in field.enum]))
    if isinstance(field, fields.Number):
        plausible.append(st.sampled_from(TRICKY_NUMBERS))
        plausible.append(st.sampled_from(["150", "-1", "\u0661\u0662\u0663", "1_0.5", "1e999"]))
    if isinstance(field, fields.String):
        plausible.append(st.sampled_from(TRICKY_TEXT))
    if isinstance(field, fields.Boolean):
        plausible.append(st.sampled_from([True, False, "yes", "off", 2]))
    plausible.append(_junk)
    return st.one_of(plausible)


def entries(schema: Schema, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts shaped like ``schema``'s input: required keys mostly present,
    optional keys sometimes, now and then an unknown key."""
    keyed = {(f.data_key or name): f for name, f in schema.fields.items() if not f.dump_only}
    required = {k: field_values(f, depth) for k, f in keyed.items() if f.required}
    optional = {k: field_values(f, depth) for k, f in keyed.items() if not f.required}
    full = st.fixed_dictionaries(required, optional=optional)
    sparse = st.fixed_dictionaries({}, optional={**required, **optional})
    extra = st.dictionaries(st.sampled_from(["unknown_key", "Name"]), _junk, max_size=1)
    shaped = st.one_of(full, full, full, sparse)
    return st.builds(lambda a, b: {**a, **b}, shaped, st.one_of(st.just({}), st.just({}), extra))


# --- mutations of a good entry ------------------------------------------------
#
# Entries built from scratch are nearly always refused at the top; the bugs
# live behind validation, where a value that passes its own field's check
# meets the others in @validates_schema or @post_load. So most fuzz entries
# are a known-good entry with one to three keys replaced, added or removed.

Path = tuple[Any, ...]


def _field_of(schema: Schema, key: str) -> fields.Field[Any] | None:
    for name, field in schema.fields.items():
        if (field.data_key or name) == key:
            return field
    return None


def _nested(field: fields.Field[Any]) -> Schema | None:
    if isinstance(field, fields.List):
        field = field.inner
    if isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
        return field.schema
    return None


def slots(schema: Schema, entry: dict[str, Any], path: Path = ()) -> list[tuple[Path, str, Any]]:
    """Every (dict path, key, field) a mutation can touch: each key of each
    nested block, present or not."""
    found: list[tuple[Path, str, Any]] = []
    for name, field in schema.fields.items():
        key = field.data_key or name
        found.append((path, key, field))
        value = entry.get(key)
        inner = _nested(field)
        if inner is None:
            continue
        if isinstance(value, dict):
            found += slots(inner, value, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    found += slots(inner, item, (*path, key, i))
    return found


_DELETE = object()


def _apply(entry: dict[str, Any], changes: list[tuple[Path, str, Any]]) -> dict[str, Any]:
    """A copy of ``entry`` with ``changes`` made; a change whose path an
    earlier change replaced (no longer a dict or list there) is skipped."""
    out = copy.deepcopy(entry)
    for path, key, value in changes:
        node: Any = out
        try:
            for part in path:
                node = node[part]
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(node, dict):
            continue
        if value is _DELETE:
            node.pop(key, None)
        else:
            node[key] = value
    return out


def mutations(schema: Schema, good: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``good`` with one to three of its keys (at any depth) changed, added
    or removed."""
    options = slots(schema, good)
    # Built once per slot: hypothesis strategies are lazy but not free.
    per_slot = [
        st.tuples(
            st.just(path),
            st.just(key),
            st.one_of(field_values(field, 1), st.just(_DELETE)),
        )
        for path, key, field in options
    ]
    change = st.one_of(per_slot)
    return st.lists(change, min_size=1, max_size=3).map(lambda cs: _apply(good, cs))


def fuzz_entries(schema: Schema, goods: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly mutations of the good entries, sometimes entries from scratch."""
    mutated = st.one_of([mutations(schema, good) for good in goods])
    # One in eight from scratch: those are refused near the top and cost
    # the most to generate; the mutations reach the checks behind them.
    return st.one_of(*[mutated] * 7, entries(schema))
