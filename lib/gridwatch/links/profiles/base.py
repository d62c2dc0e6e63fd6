"""The shape of a device profile and how a profile becomes value specs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from gridwatch.links.values import ValueKind, ValueSpec, parse_path

__all__ = ["DeviceProfile", "ProfileValue", "UnknownValueError"]

T = TypeVar("T")


class UnknownValueError(ValueError):
    """A picked value the profile's library does not report."""


@dataclass(frozen=True)
class ProfileValue:
    """One value of a library's sample, as a sensor.

    Attributes:
        unit: HA unit of measurement.
        device_class: HA sensor device class.
        state_class: HA state class (``None`` for text).
        kind: number or text (flags and modes are published as text).
        default: published when the link lists no values.
        minimum / maximum: physically possible range (a reading outside is
            a decoding fault, not a value); the user may narrow it.
        precision: decimals published.
    """

    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = "measurement"
    kind: ValueKind = ValueKind.NUMBER
    default: bool = True
    minimum: float | None = None
    maximum: float | None = None
    precision: int | None = None


@dataclass(frozen=True)
class DeviceProfile:
    """A device kind a BLE link can name (``device:``).

    Attributes:
        kind: the apps.yaml spelling.
        title: what it is, for errors and the README.
        library: the PyPI distribution that speaks its protocol.
        module: that library's import name.
        python: the oldest Python the library's current line supports.
        passive: advertisement-only (no connection is ever made).
        needs_key: the device encrypts its data (``key:`` required).
        values: the library's sample keys and how each is published.
    """

    kind: str
    title: str
    library: str
    module: str
    python: tuple[int, int]
    passive: bool
    needs_key: bool
    values: Mapping[str, ProfileValue]

    @property
    def python_text(self) -> str:
        return f"Python >= {self.python[0]}.{self.python[1]}"

    def default_specs(self, key: str) -> tuple[ValueSpec, ...]:
        """The values published when the link lists none (named as the library names them)."""
        return tuple(
            self.spec(ValueSpec(name=name, key=key), source=name)
            for name, value in self.values.items()
            if value.default
        )

    def spec(self, picked: ValueSpec, source: str) -> ValueSpec:
        """A user's value, completed from the profile.

        Args:
            picked: the value as configured (name, optional unit, class,
                range, precision); its key is the link's device key.
            source: where it sits in the library's sample: a value name,
                optionally indexed (``cell_voltages[0]``).

        Returns:
            ``picked`` with the path set and every attribute the user left
            out taken from the profile.

        Raises:
            UnknownValueError: the library reports no such value.
        """
        parts = parse_path(source)
        head = parts[0] if parts else None
        known = self.values.get(head) if isinstance(head, str) else None
        if known is None:
            raise UnknownValueError(
                f"{self.title} ({self.library}) reports no value {source!r}; "
                f"it reports: {', '.join(sorted(self.values))}"
            )
        return replace(
            picked,
            path=source,
            kind=known.kind if picked.kind is ValueKind.NUMBER else picked.kind,
            unit=_first(picked.unit, known.unit),
            device_class=_first(picked.device_class, known.device_class),
            state_class=_first(
                picked.state_class, known.state_class if known.kind is ValueKind.NUMBER else None
            ),
            minimum=_first(picked.minimum, known.minimum),
            maximum=_first(picked.maximum, known.maximum),
            precision=_first(picked.precision, known.precision),
        )

    def sources(self) -> Sequence[str]:
        return tuple(self.values)


def _first(given: T | None, default: T | None) -> T | None:
    return default if given is None else given
