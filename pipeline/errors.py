"""Errors a user can act on: each carries a one-line message and the fix.

The `parallax` command prints these as ``error: <message>`` and ``fix: <fix>`` and exits non-zero
without a traceback (``-v`` shows it). Library code raises them where it knows the fix; the CLI
also translates a few foreign errors (DuckDB's missing file and lock messages) into them.
"""

from __future__ import annotations


class ParallaxError(Exception):
    """A problem with a known fix. ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


class ConfigError(ParallaxError, ValueError):
    """A settings or outlets file that cannot be used (invalid TOML, unknown setting...)."""

    exit_code = 2


class NoWarehouse(ParallaxError):
    """The warehouse file does not exist yet."""


class WarehouseBusy(ParallaxError):
    """Another process holds the warehouse's write lock."""


class NoOutlets(ParallaxError):
    """The workspace lists no outlets."""


class ModelMissing(ParallaxError):
    """A translation model is not on disk (or not usable)."""


class HubUnreachable(ParallaxError):
    """The model hub could not be reached."""
