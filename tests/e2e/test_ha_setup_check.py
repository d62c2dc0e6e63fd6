"""A Home Assistant that did not set up its configuration fails the boot at once.

Run against each HA version of the matrix (marked e2e): the tests that
depend on an integration would otherwise only time out, one by one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.ha import HaSetupError, HomeAssistant
from tests.e2e.ha_config import DOMAINS_WITH_DEMO, HaConfig
from tests.e2e.ha_install import ensure_installed, install_from_env
from tests.e2e.process import free_port

pytestmark = pytest.mark.e2e


def test_an_integration_ha_cannot_set_up_stops_the_boot_with_its_name(tmp_path: Path) -> None:
    install = install_from_env()
    ensure_installed(install, DOMAINS_WITH_DEMO)
    config = HaConfig(port=free_port(), extra={"gridwatch_no_such_integration": {}})
    ha = HomeAssistant(install, tmp_path / "config", config)
    try:
        with pytest.raises(HaSetupError) as raised:
            ha.start()
    finally:
        ha.stop()

    message = str(raised.value)
    assert f"Home Assistant {install.version}" in message
    assert "integration 'gridwatch_no_such_integration' is not loaded" in message
