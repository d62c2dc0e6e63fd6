"""The words of a link outage notice: what is wrong, the figures, what to do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gridwatch.links.availability import FatalKind, RaiseOutageNotice
from gridwatch.links.entities import wall_time

# Resolution steps per transport, in the order a person should try them.
_STEPS: dict[str, tuple[str, ...]] = {
    "mqtt": (
        "Check that the MQTT broker at {target} is running (for the Mosquitto add-on: "
        "Settings > Add-ons > Mosquitto broker > Log).",
        "Check that the gateway publishing {keys} is powered and on the network.",
        "Check the broker host, port and credentials of link '{link}' in apps.yaml "
        "and secrets.yaml.",
    ),
    "websocket": (
        "Open {target} in a browser from the AppDaemon host: the controller must answer.",
        "If the controller's IP address changed, update the url of link '{link}' in apps.yaml "
        "(a DHCP reservation stops it changing again).",
        "Power-cycle the controller if its web page does not load either.",
    ),
    "http": (
        "Open {target} in a browser from the AppDaemon host: the device must answer.",
        "If the device's IP address changed, update the url of link '{link}' in apps.yaml.",
        "Power-cycle the device if its web page does not load either.",
    ),
    "ble": (
        "Check that the device {target} is powered and within Bluetooth range of the "
        "AppDaemon host (a few metres, few walls).",
        "Close the vendor's phone app: most devices accept only one Bluetooth connection.",
        "Check that Bluetooth works on the AppDaemon host (`bluetoothctl show` lists "
        "a controller that is powered on).",
    ),
}
_SILENT_STEP = (
    "The connection is up but nothing arrives: check that the device or gateway still "
    "sends {keys} (its own status page or log)."
)
_AUTH_STEPS = (
    "Fix the username / password of link '{link}' (secrets.yaml) so they match the device.",
    "Restart the link monitor app afterwards: refused credentials are not retried, so the "
    "device does not lock the account.",
)
_HOST_STEPS = (
    "This host cannot use Bluetooth: check that BlueZ (bluetoothd) runs and has an adapter "
    "(`bluetoothctl show`).",
    "In a container, give AppDaemon the host's D-Bus (mount /run/dbus) so bleak can reach BlueZ.",
    "Restart the link monitor app afterwards, or remove link '{link}' from apps.yaml.",
)
_START_STEPS = (
    "Check the settings of link '{link}' in apps.yaml against the error above.",
    "Restart the link monitor app afterwards (saving apps.yaml does that).",
)
_STOPPED_STEPS = ("Restart the link monitor app once the cause above is fixed.",)
_FATAL_TEXT = {
    FatalKind.AUTH: ("credentials refused", _AUTH_STEPS),
    FatalKind.HOST: ("no Bluetooth on this host", _HOST_STEPS),
    FatalKind.START: ("cannot start", _START_STEPS),
    FatalKind.OTHER: ("stopped", _STOPPED_STEPS),
}
_CLOSING_STEP = "This notice clears itself as soon as data flows again."


@dataclass(frozen=True)
class OutageText:
    """Title, message and steps of one outage notice."""

    title: str
    message: str
    steps: tuple[str, ...]


def human_duration(seconds: float) -> str:
    """``"45 s"``, ``"10 min"``, ``"2.5 h"``: a person reads a notice, not a float."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def outage_text(
    action: RaiseOutageNotice,
    transport: str,
    target: str,
    keys: list[str],
    grace_period_s: float,
    now_mono: float,
    now_wall: datetime,
) -> OutageText:
    """Compose the notice for a link outage.

    Args:
        action: the raise decision with the link's figures.
        transport: mqtt / websocket / http / ble.
        target: where the link points, with no credentials (``host:port``,
            URL without password, BLE address).
        keys: the topics / events / characteristics the values arrive on.
        grace_period_s: when the link's values go unavailable.
        now_mono: monotonic now.
        now_wall: wall-clock now.

    Returns:
        The notice text.
    """
    health = action.health
    fill = {"link": action.link, "target": target, "keys": ", ".join(keys) or "its data"}
    lasted = human_duration(action.outage_s)
    if action.fatal is not None:
        headline, fatal_steps = _FATAL_TEXT[action.fatal.kind]
        title = f"Link {action.link}: {headline}"
        what = f"Link {action.link} ({transport}, {target}) stopped: {action.fatal.detail}."
        steps = tuple(s.format(**fill) for s in fatal_steps)
    elif action.silent:
        title = f"Link {action.link} sends no data"
        what = f"Link {action.link} ({transport}, {target}) is connected but sent no data " + (
            f"for {lasted}."
        )
        first_check = _STEPS.get(transport, ())[:1]
        steps = (_SILENT_STEP.format(**fill), *(s.format(**fill) for s in first_check))
    else:
        title = f"Link {action.link} is offline"
        what = f"No connection to {target} ({transport}) for {lasted}."
        if health.last_error:
            what += f" Last error: {health.last_error}."
        steps = tuple(s.format(**fill) for s in _STEPS.get(transport, ()))
    last_message = wall_time(health.last_message_at, now_mono, now_wall) or "never"
    figures = (
        f"Attempts {health.attempts}, consecutive failures {health.consecutive_failures}, "
        f"success rate {health.success_rate:.0%}, reconnects {health.reconnects}, "
        f"last message {last_message}."
    )
    effect = (
        "Its sensors show their last value marked stale"
        f" and become unavailable after {human_duration(grace_period_s)} without data."
    )
    return OutageText(title, f"{what} {figures} {effect}", (*steps, _CLOSING_STEP))
