"""The feature contract: what a feature package declares, in one place, to
plug into the runtime without editing the engine, the HTTP shell, ``serve``
or ``demo``.

A feature package (``cti/control/``, ``recording/``, ``workorder_sync/`` ...)
keeps the same file roles: a pure ``core``, a ``service`` that performs its
commands, ``http`` (its routes) and ``schemas`` (its payloads), and a
``feature.py`` holding one :class:`Feature`:

* ``config``: its configuration section (a frozen dataclass with defaults,
  and a validation that raises :class:`cti.config.ConfigError` naming the key);
* ``migrations``: a directory of numbered SQL files, applied at start after the
  core's (versions are recorded as ``<feature>/<file>``);
* ``dialplan``: its fragment of ``extensions.conf`` (contexts it owns);
* ``routes`` + ``openapi``: adds its HTTP routes to the application and
  returns its part of the OpenAPI document (merged into the one document);
* ``commands``: adds its operator commands to ``hotline`` (an argparse
  sub-command whose ``func(args) -> exit code`` the CLI calls);
* ``run``: an async context manager (aiohttp ``cleanup_ctx`` style) entered
  at start in feature order: it subscribes to the bus, builds its service,
  hands it to its routes (``app[KEY] = service``), starts its long-lived
  tasks, yields, and stops them when the runtime stops (in reverse order).

Features are enabled by configuration (``features = [...]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from aiohttp import web

    from cti.config import EngineConfig
    from cti.runtime import Runtime

__all__ = ["AgentDetailsChanged", "ConfigSection", "Feature"]


@dataclass(frozen=True)
class ConfigSection:
    """A feature's configuration table ``[name]``: parsed into ``type``
    (a frozen dataclass whose every field has a default) and checked by
    ``validate`` (raise ConfigError naming the key). ``load_config`` parses
    it from the file, the section's environment variables and overrides;
    ``build_runtime`` validates it again for features handed to it directly."""

    name: str
    type: type
    validate: Callable[[Any], None] = lambda section: None
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables of the section: ``{"HOTLINE_CITY_APP_KEY": "app_key"}``."""


@dataclass(frozen=True)
class Feature:
    name: str
    summary: str
    config: ConfigSection | None = None
    migrations: Path | None = None
    dialplan: Callable[[Any, EngineConfig], str] | None = None
    """(its config section, the engine's config) -> dialplan text."""
    routes: Callable[[web.Application], None] | None = None
    openapi: Callable[[], Mapping[str, Any]] | None = None
    """{"paths": {...}, "schemas": {...}}: merged into the one document."""
    run: Callable[[Runtime, Any], AbstractAsyncContextManager[None]] | None = None
    """(the runtime, its config section) -> entered at start, left at stop."""
    commands: Callable[[Any], None] | None = None
    """(the ``hotline`` argparse sub-parsers) -> adds its sub-command(s); each
    sets ``func`` (``args -> exit code``) with ``set_defaults``."""
    requires: tuple[str, ...] = field(default=())
    """Features that must be enabled (and run) before this one."""


@dataclass(frozen=True, slots=True)
class AgentDetailsChanged:
    """Published by a feature when what it adds to an agent's state changed
    (call control: hold, consultation); the agent's desktops are told."""

    agent: str
