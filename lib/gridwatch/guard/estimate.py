"""The export the battery does not cause (PV minus load), estimated from
measurements, and the check that the plant followed a change.

Pure. A grid reading is ``uncontrolled + battery power``, but which battery
power a reading reflects is uncertain while a change is in flight and for a
settle time after it (meters report once a period, often averaged and late;
inverters ramp). The estimator keeps the interval of battery powers a
reading may reflect and:

- on a *settled* reading (no change in flight, arrived after the last change
  plus the settle time) credits the believed power, or the measured battery
  power when one is configured and fresh;
- on an *uncertain* reading that some power of the interval explains without
  a disturbance, takes the higher of the last settled estimate (the change
  is landing) and the reading minus the latest power (it has landed): a
  lowering is then never credited before it shows, and a start or raise
  landing is not mistaken for a disturbance;
- on an uncertain reading no power of the interval explains (a disturbance
  arrived as well), credits the lowest power of the interval: the one that
  makes the uncontrolled export look highest.

A measured battery power never makes an uncertain estimate lower.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """The estimator's memory.

    Attributes:
        uncontrolled_w: export not caused by the battery (W), from the
            latest grid reading; ``None`` before the first one.
        settled_w: the same from the latest settled reading.
        low_w: lowest battery power a reading since then may reflect (W).
        high_w: highest such power (W).
        reading_at: arrival time of the latest reading folded in.
        settled: whether that reading was settled.
        rose: an uncertain reading since the last settled one was above
            what the change explains (PV up or load down): it can mask a
            lowering.
        fell: one was below (PV down, load up): it can mask a raise.
        export_w: the latest reading (W).
        steady: it is within the tolerance of the one before (an averaging
            meter is not in the middle of showing a step).
    """

    uncontrolled_w: float | None = None
    settled_w: float | None = None
    low_w: float = 0.0
    high_w: float = 0.0
    reading_at: float | None = None
    settled: bool = False
    rose: bool = False
    fell: bool = False
    export_w: float | None = None
    steady: bool = True


def widen(est: Estimate, *powers: float) -> Estimate:
    """Add battery powers that readings from now on may reflect (a change
    launched, or the belief about the actuator changed)."""
    low, high = min(est.low_w, *powers), max(est.high_w, *powers)
    if low == est.low_w and high == est.high_w:
        return est
    return Estimate(
        est.uncontrolled_w,
        est.settled_w,
        low,
        high,
        est.reading_at,
        est.settled,
        est.rose,
        est.fell,
        est.export_w,
        est.steady,
    )


def fold_reading(
    est: Estimate,
    export_w: float,
    at: float,
    *,
    settled: bool,
    believed_w: float,
    latest_w: float | None = None,
    measured_w: float | None = None,
    tolerance_w: float = 0.0,
) -> Estimate:
    """Fold one grid reading into the estimate.

    Args:
        est: the estimate so far.
        export_w: the reading (W, export positive).
        at: its arrival time (monotonic).
        settled: no change in flight and ``at`` is past the last change
            plus the settle time.
        believed_w: the battery power the guard believes flows now (W).
        latest_w: the newest power commanded (in flight), else the believed.
        measured_w: measured battery power (W, discharge positive), if fresh.
        tolerance_w: meter noise and rounding a reading may differ by and
            still count as explained (the deadband covers it).

    Returns:
        The new estimate.
    """
    steady = est.export_w is None or abs(export_w - est.export_w) <= tolerance_w
    if settled:
        battery = believed_w if measured_w is None else max(measured_w, 0.0)
        value = export_w - battery
        return Estimate(
            value, value, believed_w, believed_w, at, True, est.rose, est.fell, export_w, steady
        )
    latest = believed_w if latest_w is None else latest_w
    low, high = min(est.low_w, believed_w, latest), max(est.high_w, believed_w, latest)
    base = est.settled_w
    tol = tolerance_w
    explained = base is not None and base + low - tol <= export_w <= base + high + tol
    # Explained by the change landing: no disturbance, or it landed; else a
    # disturbance as well: assume the worst.
    value = max(base, export_w - latest) if explained and base is not None else export_w - low
    if measured_w is not None:
        value = max(value, export_w - max(measured_w, 0.0))
    rose = est.rose or (base is not None and export_w > base + high + tol)
    fell = est.fell or (base is not None and export_w < base + low - tol)
    return Estimate(value, base, low, high, at, False, rose, fell, export_w, steady)


@dataclass(frozen=True)
class Expectation:
    """What a verified change should do to the measurements.

    Attributes:
        delta_w: commanded change of battery power (W; negative lowers).
        export_before_w: the grid reading the change was decided on (W).
        due: the first reading arriving at or after this is checked.
        what: the change, for the notice.
        battery_before_w: measured battery power before it, if configured.
        power_before_w: the battery power believed before it (W).
    """

    delta_w: float
    export_before_w: float
    due: float
    what: str
    battery_before_w: float | None = None
    power_before_w: float = 0.0


@dataclass(frozen=True)
class Response:
    """How the plant answered a change.

    Attributes:
        problem: ``None`` when it followed; else what the measurements
            showed, naming the likely cause.
        wrong_way: the grid reading moved clearly *against* the change (a
            start that lowered export, a stop that raised it): the sign of
            the grid sensor is the likely cause, not the inverter.
    """

    problem: str | None = None
    wrong_way: bool = False


def response_problem(
    expect: Expectation,
    export_after_w: float,
    *,
    fraction: float,
    measured_delta_w: float | None = None,
) -> Response:
    """Whether the plant followed a change, from the first settled reading.

    A change the battery followed moves the grid reading by about the
    change; one it did not follow leaves it where it was; a wrong sign
    moves it the other way. The grid reading always counts: a measured
    battery power may explain a grid reading that a PV or load step kept
    from moving, but never one that moved against the change (a battery
    that follows while the grid sign is wrong looks just like that).

    Args:
        expect: the change and the reading before it.
        export_after_w: the first settled reading after it (W, export positive).
        fraction: share of the change the measurement must show (0-1).
        measured_delta_w: change of a measured battery power, from a reading
            newer than the change, if configured.

    Returns:
        The verdict, naming the likely causes.
    """
    delta = expect.delta_w
    sign = 1.0 if delta > 0 else -1.0
    moved = export_after_w - expect.export_before_w
    # A lowering or stop is the safe direction: a quarter of it showing is
    # enough (a stuck inverter shows none; a PV step in the window eats
    # part of it).
    needed = fraction * abs(delta) * (1.0 if delta > 0 else 0.5)
    if moved * sign >= needed:
        return Response()
    battery = "" if measured_delta_w is None else f", battery power {measured_delta_w:+.0f} W"
    shown = f"commanded {delta:+.0f} W, grid export moved {moved:+.0f} W{battery}"
    if -moved * sign >= needed:
        return Response(
            f"the grid reading moved against {expect.what} ({shown}): the grid sensor's "
            "sign is likely the other way round -- check grid_sign (import_positive / "
            "export_positive)",
            wrong_way=True,
        )
    if measured_delta_w is not None and measured_delta_w * sign >= needed:
        return Response()  # the battery followed; a PV or load step hid it
    return Response(
        f"the plant did not follow {expect.what}: {shown}. Likely a stuck or slow "
        "inverter, a wrong grid_sign, or the wrong entity configured"
    )
