"""Export since the energy counter's last update."""

import pytest

from gridwatch.guard.cap_estimate import UnmeteredExport


def test_integrates_the_held_export_until_now():
    acc = UnmeteredExport().on_export(3600.0, 0.0)  # 3.6 kW
    assert acc.value(100.0) == pytest.approx(0.1)  # 100 s of 3.6 kW = 0.1 kWh
    acc = acc.on_export(0.0, 100.0)
    assert acc.value(1000.0) == pytest.approx(0.1)


def test_import_and_invalid_readings_add_nothing():
    acc = UnmeteredExport().on_export(-2000.0, 0.0)
    assert acc.value(100.0) == 0.0
    assert acc.on_export(None, 100.0).value(200.0) == 0.0


def test_a_counter_update_without_a_known_increase_starts_over():
    acc = UnmeteredExport().on_export(3600.0, 0.0)
    acc = acc.on_counter(None, 50.0)
    assert acc.value(100.0) == pytest.approx(0.05)
    # A counter that went down (midnight reset): it shows everything again.
    assert acc.on_counter(-3.0, 100.0).value(100.0) == 0.0


def test_a_late_counter_only_takes_off_what_it_has_counted():
    # 3.6 kW exported from t=0: 1 kWh an hour, 0.1 kWh per 100 s. The
    # counter reports every 300 s what was exported up to 300 s before.
    acc = UnmeteredExport().on_export(3600.0, 0.0)
    acc = acc.on_counter(0.0, 300.0)  # it has counted nothing of it yet
    assert acc.value(300.0) == pytest.approx(0.3)
    acc = acc.on_counter(0.3, 600.0)  # 0..300 s counted; 300..600 s not
    assert acc.value(600.0) == pytest.approx(0.3)
    # More than the integral (it counted export from before the guard
    # started): never below zero.
    assert acc.on_counter(5.0, 700.0).value(700.0) == 0.0
