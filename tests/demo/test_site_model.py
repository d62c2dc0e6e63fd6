import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from demo.site_model import SiteParams, SiteState, house_load, pv_power, step


@pytest.mark.parametrize("hour", [0.0, 5.9, 20.0, 23.5])
def test_no_pv_at_night(hour):
    assert pv_power(hour, SiteParams()) == 0.0


def test_pv_peaks_at_solar_noon_and_clouds_cut_it():
    params = SiteParams()
    noon = (params.sunrise_h + params.sunset_h) / 2
    assert pv_power(noon, params) == pytest.approx(params.pv_peak_w)
    assert pv_power(noon, params, cloud=1.0) == pytest.approx(0.2 * params.pv_peak_w)
    assert pv_power(noon - 3, params) < pv_power(noon, params)


def test_discharge_at_noon_exports_and_drains_the_battery():
    state = SiteState(soc_pct=50.0)
    new, readings = step(state, hour=13.0, dt_s=3600, discharge_w=2000)
    assert readings.grid_w < 0  # sunny noon plus discharge: exporting
    assert new.soc_pct == pytest.approx(50.0 - 2.0 / 10.0 * 100)
    assert new.exported_kwh == pytest.approx(-readings.grid_w / 1000)
    assert new.imported_kwh == 0.0


def test_bms_floor_stops_discharge():
    state = SiteState(soc_pct=5.0)
    _, readings = step(state, hour=21.0, dt_s=60, discharge_w=3000)
    assert readings.battery_w == 0.0
    assert readings.grid_w == pytest.approx(house_load(21.0, SiteParams()))


@given(
    soc=st.floats(0, 100),
    hour=st.floats(0, 24),
    dt=st.floats(0.1, 600),
    discharge=st.floats(-1e4, 1e5),
)
def test_energy_balance_and_soc_bounds(soc, hour, dt, discharge):
    state = SiteState(soc_pct=soc)
    new, r = step(state, hour=hour, dt_s=dt, discharge_w=discharge)
    assert math.isclose(r.grid_w, r.load_w - r.pv_w - r.battery_w, abs_tol=1e-6)
    assert 0.0 <= r.battery_w <= SiteParams().max_discharge_w
    assert 0.0 <= new.soc_pct <= soc
