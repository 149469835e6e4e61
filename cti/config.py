"""Engine configuration: defaults in code < TOML file < environment < command line.

Validated once at start; a bad value raises :class:`ConfigError` naming the key,
what was wrong and what is expected.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key '{key}': {problem}")
        self.key = key


@dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "hotline"
    secret: str = ""
    action_timeout_s: float = 10.0
    ping_interval_s: float = 5.0


@dataclass(frozen=True)
class LineSpec:
    """A hotline line: the number citizens dial (DID) and the queue it feeds."""

    did: str
    line: str
    queue: str
    greeting: str = ""


@dataclass(frozen=True)
class AgentSpec:
    """An agent seat: SIP extension, display name, SIP password (generated if empty)."""

    extension: str
    name: str
    password: str = ""


def _default_lines() -> tuple[LineSpec, ...]:
    return (
        LineSpec("12345", "12345", "12345-general"),
        LineSpec("96181", "96181", "96181-general"),
    )


def _default_agents() -> tuple[AgentSpec, ...]:
    return tuple(AgentSpec(str(1000 + n), f"坐席{n:02d}") for n in range(1, 5))


@dataclass(frozen=True)
class EngineConfig:
    ami: AmiConfig = field(default_factory=AmiConfig)
    database_dsn: str = ""
    redis_url: str = ""
    lines: tuple[LineSpec, ...] = field(default_factory=_default_lines)
    agents: tuple[AgentSpec, ...] = field(default_factory=_default_agents)
    ring_timeout_s: int = 15
    hold_timeout_s: int = 120
    resync_fully_booted_timeout_s: float = 10.0

    @property
    def lines_by_did(self) -> dict[str, str]:
        return {spec.did: spec.line for spec in self.lines}


ENV_KEYS = {
    "HOTLINE_AMI_HOST": "ami.host",
    "HOTLINE_AMI_PORT": "ami.port",
    "HOTLINE_AMI_USER": "ami.username",
    "HOTLINE_AMI_SECRET": "ami.secret",
    "HOTLINE_PG_DSN": "database_dsn",
    "HOTLINE_REDIS_URL": "redis_url",
}


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(key, f"expected a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(
                key, f"expected a {'whole ' if kind is int else ''}number, got {value!r}"
            ) from None
        if number <= 0:
            raise ConfigError(key, f"must be greater than 0, got {value!r}")
        return number
    if kind is str:
        if not isinstance(value, str | int):
            raise ConfigError(key, f"expected text, got {value!r}")
        return str(value)
    raise AssertionError(kind)


def _apply_flat(obj: Any, values: Mapping[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(obj)}
    changes = {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in known:
            raise ConfigError(key, f"unknown key; known keys here: {', '.join(sorted(known))}")
        current = getattr(obj, name)
        if isinstance(current, AmiConfig):
            if not isinstance(value, Mapping):
                raise ConfigError(key, "expected a table")
            changes[name] = _apply_flat(current, value, key + ".")
        elif name == "lines":
            changes[name] = _lines(key, value)
        elif name == "agents":
            changes[name] = _agents(key, value)
        else:
            changes[name] = _coerce(key, value, type(current))
    return replace(obj, **changes)


def _records(
    key: str, value: Any, required: tuple[str, ...], optional: tuple[str, ...]
) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ConfigError(key, "expected a non-empty list of tables")
    out = []
    for i, item in enumerate(value):
        here = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(here, "expected a table")
        for name in item:
            if name not in required + optional:
                raise ConfigError(
                    f"{here}.{name}", f"unknown key; expected {', '.join(required + optional)}"
                )
        for name in required:
            if not str(item.get(name, "")).strip():
                raise ConfigError(f"{here}.{name}", "missing")
        out.append({k: str(v) for k, v in item.items()})
    return out


def _lines(key: str, value: Any) -> tuple[LineSpec, ...]:
    specs = tuple(
        LineSpec(**r) for r in _records(key, value, ("did", "line", "queue"), ("greeting",))
    )
    dids = [s.did for s in specs]
    if len(set(dids)) != len(dids):
        raise ConfigError(key, f"a DID appears twice: {dids}")
    return specs


def _agents(key: str, value: Any) -> tuple[AgentSpec, ...]:
    specs = tuple(
        AgentSpec(**r) for r in _records(key, value, ("extension", "name"), ("password",))
    )
    for i, spec in enumerate(specs):
        if not spec.extension.isdigit():
            raise ConfigError(f"{key}[{i}].extension", f"must be digits, got {spec.extension!r}")
    exts = [s.extension for s in specs]
    if len(set(exts)) != len(exts):
        raise ConfigError(key, f"an extension appears twice: {exts}")
    return specs


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> EngineConfig:
    """Build the configuration from its layers; raise ConfigError on a bad value."""
    config = EngineConfig()
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
        config = _apply_flat(config, data, "")
    if env:
        for name, dotted in ENV_KEYS.items():
            if name in env and env[name] != "":
                try:
                    config = _apply_flat(config, _unflatten({dotted: env[name]}), "")
                except ConfigError as exc:
                    raise ConfigError(name, str(exc).split(": ", 1)[1]) from None
    if overrides:
        config = _apply_flat(config, _unflatten(overrides), "")
    return config
