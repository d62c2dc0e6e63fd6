"""Error types of the Home Assistant boundary.

The adapter turns AppDaemon's ways of reporting failure (a result dict with
``ad_status``, a ``None`` return, a logged warning) into these, so logic in
``gridwatch`` catches one typed hierarchy and never inspects AppDaemon results.

Hierarchy::

    HassError
    ├── ServiceError          a service call failed (HA refused it, unknown service)
    │   └── ServiceTimeout    no answer within the timeout
    └── CommandError          a raw websocket command failed
        └── CommandTimeout    no answer within the timeout
"""

from __future__ import annotations


class HassError(Exception):
    """Base of every error raised at the Home Assistant boundary."""


class ServiceError(HassError):
    """A service call failed.

    Args:
        service: the service as ``domain/service``.
        reason: why it failed, in words (HA's error message when there is one).
    """

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"service {service} failed: {reason}")
        self.service = service
        self.reason = reason


class ServiceTimeout(ServiceError):
    """A service call got no answer within its timeout.

    The call may still take effect in HA afterwards: callers that actuate
    hardware read the target back rather than assume it did not happen.

    Args:
        service: the service as ``domain/service``.
        timeout_s: the timeout that expired.
    """

    def __init__(self, service: str, timeout_s: float) -> None:
        super().__init__(service, f"no answer within {timeout_s:g} s")
        self.timeout_s = timeout_s


class CommandError(HassError):
    """A raw websocket command failed.

    Args:
        command_type: the command's ``type`` (``recorder/statistics_during_period``).
        reason: why it failed (HA's error code and message when there is one).
    """

    def __init__(self, command_type: str, reason: str) -> None:
        super().__init__(f"websocket command {command_type} failed: {reason}")
        self.command_type = command_type
        self.reason = reason


class CommandTimeout(CommandError):
    """A raw websocket command got no answer within its timeout.

    Args:
        command_type: the command's ``type``.
        timeout_s: the timeout that expired.
    """

    def __init__(self, command_type: str, timeout_s: float) -> None:
        super().__init__(command_type, f"no answer within {timeout_s:g} s")
        self.timeout_s = timeout_s
