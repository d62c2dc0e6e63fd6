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


def test_a_counter_update_starts_over():
    acc = UnmeteredExport().on_export(3600.0, 0.0)
    acc = acc.on_counter(50.0)
    assert acc.value(100.0) == pytest.approx(0.05)
