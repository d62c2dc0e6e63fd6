"""Every number option of every app, written as text, must be ASCII decimal
notation (issue 12): ``float()`` alone reads ``"١٢٣"`` as 123 and ``"1_0.5"``
as 10.5, so a typo or a pasted value would load as a limit nobody wrote.

Walks each schema's option slots (nested blocks too) from a known-good entry.
"""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, fields

from gridwatch.config.base import ConfigError, load_config
from tests.config.schema_fuzz import Path, slots
from tests.config.test_fuzz import CASES

NOT_ASCII_DECIMAL = ("\u0661\u0662\u0663", "1_0.5", "\uff15")


def number_slots() -> list[tuple[str, Path, str]]:
    found = []
    for case, (schema, goods) in CASES.items():
        for path, key, field in slots(schema, goods[0]):
            if isinstance(field, fields.Number):
                found.append((case, path, key))
    return found


def with_value(entry: dict[str, Any], path: Path, key: str, value: Any) -> dict[str, Any]:
    out: Any = {**entry}
    node = out
    for part in path:
        node[part] = node[part].copy()  # lists and dicts alike
        node = node[part]
    node[key] = value
    return dict(out)


def test_every_app_has_number_options_to_check() -> None:
    cases = {case for case, _path, _key in number_slots()}
    assert cases == set(CASES)


@pytest.mark.parametrize(
    ("case", "path", "key"),
    number_slots(),
    ids=[".".join(map(str, (c, *p, k))) for c, p, k in number_slots()],
)
def test_a_number_option_written_in_other_digits_is_refused(
    case: str, path: Path, key: str
) -> None:
    schema: Schema = CASES[case][0]
    good = CASES[case][1][0]
    for text in NOT_ASCII_DECIMAL:
        with pytest.raises(ConfigError) as err:
            load_config(schema, {"name": "typo", **with_value(good, path, key, text)})
        assert key in str(err.value)
