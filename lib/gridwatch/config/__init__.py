"""App configuration: one marshmallow schema per app, loaded into frozen dataclasses.

Import the framework from here; each app's schema lives in its own module
(``gridwatch.config.notifier_schema`` ...).
"""

from gridwatch.config.base import (
    APPDAEMON_KEYS,
    ConfigError,
    ConfigProblem,
    ConfigSchema,
    app_options,
    load_config,
)

__all__ = [
    "APPDAEMON_KEYS",
    "ConfigError",
    "ConfigProblem",
    "ConfigSchema",
    "app_options",
    "load_config",
]
