"""A cheaper ``dataclasses.replace`` for the guard's per-reading path.

``replace`` looks up every field of the class on each call (a GuardState
has some thirty): the decision per reading spent a third of its time there
(bench/bench_guard.py). ``evolve`` copies the instance's ``__dict__`` and
sets the changed fields. Only for frozen dataclasses without ``slots`` or
``__post_init__`` (nothing to re-check); the field names are checked.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def evolve(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes`` (field name -> new value).

    Raises:
        TypeError: a name that is not a field of ``obj``.
    """
    fields = obj.__dict__
    unknown = changes.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(sorted(unknown))}")
    new = object.__new__(type(obj))
    new.__dict__.update(fields)
    new.__dict__.update(changes)
    return new
