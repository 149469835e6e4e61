"""Engine configuration: defaults in code < TOML file < environment < command line.

Validated once at start; a bad value raises :class:`ConfigError` naming the key,
what was wrong and what is expected.
"""

from __future__ import annotations

import tomllib
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar


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
    priority: int = 0
    """Callers of this line are served before lower priorities (e.g. an elderly line)."""
    route: str = "engine"
    """"engine" (the hotline ACD) or "app_queue" (Asterisk's Queue(): a benchmark peer)."""


@dataclass(frozen=True)
class QueueConfig:
    name: str
    line: str
    skill: str = ""
    min_level: int = 1
    overflow_queue: str = ""
    overflow_wait_s: float = 0.0  # 0: never
    callback_wait_s: float = 0.0  # 0: never


@dataclass(frozen=True)
class AgentSpec:
    """An agent seat: SIP extension, display name, SIP password (generated if empty)."""

    extension: str
    name: str
    password: str = ""
    skills: Mapping[str, int] = field(default_factory=dict)
    queues: tuple[str, ...] = ()
    mobile: str = ""
    contact: str = ""
    """Static SIP contact instead of registration (private stack only)."""


@dataclass(frozen=True)
class AcdConfig:
    wrapup_s: float = 10.0
    rona_pause_reason: str = "no answer"
    repeat_caller_days: float = 7.0
    repeat_caller_wait_s: float = 20.0
    reservation_timeout_s: float = 5.0
    default_aht_s: float = 400.0
    level_first: bool = True
    priority_callers: Mapping[str, int] = field(default_factory=dict)
    """Caller number -> priority (e.g. a registry of elderly or disabled citizens)."""
    engine_grace_s: float = 30.0
    """The dialplan falls back when the engine has not renewed a caller's lease this long."""
    heartbeat_s: float = 10.0
    announce_every_s: float = 20.0
    fallback_wait_s: float = 300.0
    """How long app_queue keeps a fallen-back caller before the overflow message."""
    busy_skip_s: float = 5.0
    """A phone that said busy or refused the call at once is skipped this long
    (no pause), doubled per failure in a row ..."""
    unavailable_backoff_s: float = 5.0
    """A registered phone the switch could not reach (CHANUNAVAIL, CONGESTION)
    is skipped this long, doubled per failure in a row ..."""
    unavailable_backoff_max_s: float = 60.0
    """... up to this (both back-offs)."""
    switch_guard_window_s: float = 30.0
    """The switch-fault guard looks at the dials of this window ..."""
    switch_guard_min_agents: int = 5
    """... and trips when at least this many agents' last dial failed ..."""
    switch_guard_share: float = 0.5
    """... and they are at least this share of the agents dialled in the window."""
    switch_guard_clear_answers: int = 3
    """It clears after this many answered dials, once fewer than half the share fail."""


@dataclass(frozen=True)
class KpiConfig:
    answer_target_s: float = 15.0
    short_abandon_s: float = 5.0
    rate_target: float = 0.90
    talk_target_s: float = 400.0
    min_outcomes: int = 10
    print_every_s: float = 5.0
    count_app_queue: bool = False
    """Count the calls of lines routed by Asterisk's app_queue (``route =
    "app_queue"``) in the KPIs too: queue entry at ``HotlineAppQueueEnqueue``,
    answer, abandon. The engine never routes them either way."""


@dataclass(frozen=True)
class ApiConfig:
    """The HTTP API and WebSocket of the agent desktop and supervisor console."""

    enabled: bool = True
    host: str = "127.0.0.1"
    """Loopback by default: put a TLS-terminating proxy in front to expose it."""
    port: int = 8080
    """0: any free port (tests); the log says which."""
    session_ttl_s: float = 9 * 3600.0
    """A token lasts a shift (nine hours), or until logout."""


@dataclass(frozen=True)
class RtpConfig:
    """Asterisk's RTP port range (``rtp.conf``): each channel of a call takes
    a port pair (RTP + RTCP), so the range caps how many calls the switch can
    carry; past it Asterisk answers new calls 488 and agent dials fail
    CHANUNAVAIL."""

    start: int = 10000
    end: int = 20000
    """The production range (what the switch's rtp.conf says); checked against
    the agents at start (:func:`config_warnings`)."""
    private_ports: int = 0
    """Ports of the private stack (demo, tests, benchmarks); 0: sized for the
    agents (:func:`rtp_ports_needed`)."""


RTP_PORTS_PER_CALL = 4
"""A citizen's call through the switch: caller + agent channel, RTP + RTCP each."""
CALLS_PER_AGENT = 2
"""Calls the switch must carry per agent: one talking, one waiting (or a
consultation, a transfer leg)."""
MIN_PRIVATE_RTP_PORTS = 400


def rtp_ports_needed(agents: int) -> int:
    """Ports for agents x 2 calls, two channels each, RTP + RTCP each."""
    return agents * CALLS_PER_AGENT * RTP_PORTS_PER_CALL


DEFAULT_FEATURES = ("agents", "control", "screenpop", "console", "recording", "workorders")


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
    acd: AcdConfig = field(default_factory=AcdConfig)
    kpi: KpiConfig = field(default_factory=KpiConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    rtp: RtpConfig = field(default_factory=RtpConfig)
    database_dsn: str = ""
    redis_url: str = ""
    engine_id: str = "engine-1"
    lines: tuple[LineSpec, ...] = field(default_factory=_default_lines)
    queues: tuple[QueueConfig, ...] = ()
    """Empty: one queue per line, named by the line's ``queue``, served by every agent."""
    agents: tuple[AgentSpec, ...] = field(default_factory=_default_agents)
    ring_timeout_s: int = 15
    hold_timeout_s: int = 900
    """Hard cap on waiting in the engine's hold before the fallback, engine alive or not."""
    resync_fully_booted_timeout_s: float = 10.0
    data_dir: str = "/var/lib/hotline"
    """Where the engine keeps files of its own (a feature's default place for
    its files, e.g. the recordings' local store). The private stack sets it
    inside its run directory."""
    features: tuple[str, ...] = DEFAULT_FEATURES
    """The features the runtime runs, in order (see cti/features.py)."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """The features' own sections, parsed: section name -> its dataclass."""

    def section(self, name: str, kind: type[S]) -> S:
        """The feature section ``[name]`` (its defaults when absent)."""
        found = self.sections.get(name)
        return found if isinstance(found, kind) else kind()

    @property
    def lines_by_did(self) -> dict[str, str]:
        return {spec.did: spec.line for spec in self.lines}

    @property
    def effective_queues(self) -> tuple[QueueConfig, ...]:
        if self.queues:
            return self.queues
        seen: dict[str, QueueConfig] = {}
        for spec in self.lines:
            seen.setdefault(spec.queue, QueueConfig(name=spec.queue, line=spec.line))
        return tuple(seen.values())

    @property
    def private_rtp_ports(self) -> int:
        """How many RTP ports the private stack gives its Asterisk."""
        if self.rtp.private_ports:
            return self.rtp.private_ports
        return max(MIN_PRIVATE_RTP_PORTS, rtp_ports_needed(len(self.agents)))

    def agent_queues(self, agent: AgentSpec) -> tuple[str, ...]:
        """The queues an agent serves: its own list, else every skill-less queue."""
        if agent.queues:
            return agent.queues
        return tuple(q.name for q in self.effective_queues if not q.skill)


ENV_KEYS = {
    "HOTLINE_AMI_HOST": "ami.host",
    "HOTLINE_AMI_PORT": "ami.port",
    "HOTLINE_AMI_USER": "ami.username",
    "HOTLINE_AMI_SECRET": "ami.secret",
    "HOTLINE_PG_DSN": "database_dsn",
    "HOTLINE_REDIS_URL": "redis_url",
    "HOTLINE_ENGINE_ID": "engine_id",
    "HOTLINE_DATA_DIR": "data_dir",
    "HOTLINE_API_HOST": "api.host",
    "HOTLINE_API_PORT": "api.port",
}

T = TypeVar("T")
S = TypeVar("S")
# Full keys where 0 has a meaning of its own: any free port; sized for the agents.
_ZERO_MEANS_ANY = frozenset({"api.port", "rtp.private_ports"})
_NON_NEGATIVE = (
    "overflow_wait_s",
    "callback_wait_s",
    "wrapup_s",
    "repeat_caller_days",
    "repeat_caller_wait_s",
    "priority",
    "min_outcomes",
    "workers",
    "retention_every_s",
)


def _coerce(key: str, value: Any, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (tuple,):
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {value!r}")
        return tuple(
            _coerce(f"{key}[{i}]", v, typing.get_args(kind)[0]) for i, v in enumerate(value)
        )
    if origin in (Mapping, dict) or kind is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a table, got {value!r}")
        key_type, value_type = typing.get_args(kind) or (str, Any)
        return {str(k): _coerce(f"{key}.{k}", v, value_type) for k, v in value.items()}
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(key, f"expected a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            whole = "whole " if kind is int else ""
            raise ConfigError(key, f"expected a {whole}number, got {value!r}") from None
        leaf = key.rsplit(".", 1)[-1]
        if number < 0 or (number == 0 and leaf not in _NON_NEGATIVE and key not in _ZERO_MEANS_ANY):
            raise ConfigError(key, f"must be greater than 0, got {value!r}")
        return number
    if kind is str:
        if not isinstance(value, str | int):
            raise ConfigError(key, f"expected text, got {value!r}")
        return str(value)
    if kind is Any:
        return value
    raise AssertionError(f"unsupported config type {kind!r}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply(obj: T, values: Mapping[str, Any], prefix: str) -> T:
    """Apply a table of values to a dataclass instance, recursing into sections."""
    hints = _hints(type(obj))
    known = {f.name for f in fields(obj)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in known:
            raise ConfigError(key, f"unknown key; known keys here: {', '.join(sorted(known))}")
        current = getattr(obj, name)
        kind = hints[name]
        if is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(key, "expected a table")
            changes[name] = _apply(current, value, key + ".")
        elif typing.get_origin(kind) is tuple and is_dataclass(typing.get_args(kind)[0]):
            changes[name] = _records(key, value, typing.get_args(kind)[0])
        else:
            changes[name] = _coerce(key, value, kind)
    return replace(obj, **changes)  # type: ignore[type-var]


def _records(key: str, value: Any, cls: type) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(key, "expected a non-empty list of tables")
    hints = _hints(cls)
    specs = []
    for i, item in enumerate(value):
        here = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(here, "expected a table")
        kwargs = {}
        for f in fields(cls):
            required = f.default is MISSING and f.default_factory is MISSING
            if f.name in item:
                value = _coerce(f"{here}.{f.name}", item[f.name], hints[f.name])
                if required and isinstance(value, str) and not value.strip():
                    raise ConfigError(f"{here}.{f.name}", "missing")
                kwargs[f.name] = value
            elif required:
                raise ConfigError(f"{here}.{f.name}", "missing")
        for name in item:
            if name not in kwargs:
                allowed = ", ".join(f.name for f in fields(cls))
                raise ConfigError(f"{here}.{name}", f"unknown key; expected {allowed}")
        specs.append(cls(**kwargs))
    return tuple(specs)


def _unique(key: str, values: list[str], what: str) -> None:
    if len(set(values)) != len(values):
        raise ConfigError(key, f"{what} appears twice: {values}")


def validate(config: EngineConfig) -> EngineConfig:
    """Cross-checks between sections; raise ConfigError naming the key."""
    _unique("lines", [s.did for s in config.lines], "a DID")
    _unique("agents", [a.extension for a in config.agents], "an extension")
    for i, agent in enumerate(config.agents):
        if not agent.extension.isdigit():
            raise ConfigError(f"agents[{i}].extension", f"must be digits, got {agent.extension!r}")
    queues = {q.name: q for q in config.effective_queues}
    _unique("queues", [q.name for q in config.effective_queues], "a queue name")
    for i, spec in enumerate(config.lines):
        if spec.route not in ("engine", "app_queue"):
            raise ConfigError(
                f"lines[{i}].route", f"expected engine or app_queue, got {spec.route!r}"
            )
        if spec.queue not in queues:
            raise ConfigError(f"lines[{i}].queue", f"no queue named {spec.queue!r} in [[queues]]")
    for i, q in enumerate(config.effective_queues):
        if q.overflow_queue and q.overflow_queue not in queues:
            raise ConfigError(f"queues[{i}].overflow_queue", f"no queue named {q.overflow_queue!r}")
    for i, agent in enumerate(config.agents):
        for j, name in enumerate(agent.queues):
            if name not in queues:
                raise ConfigError(f"agents[{i}].queues[{j}]", f"no queue named {name!r}")
    if not 0 <= config.api.port < 65536:
        raise ConfigError("api.port", f"must be within 0..65535, got {config.api.port!r}")
    if not config.api.session_ttl_s > 0:
        raise ConfigError("api.session_ttl_s", f"must be > 0, got {config.api.session_ttl_s!r}")
    acd = config.acd
    if not 0 < acd.switch_guard_share <= 1:
        raise ConfigError(
            "acd.switch_guard_share",
            f"a share of the agents dialled, within (0, 1], got {acd.switch_guard_share!r}",
        )
    if acd.unavailable_backoff_max_s < max(acd.unavailable_backoff_s, acd.busy_skip_s):
        raise ConfigError(
            "acd.unavailable_backoff_max_s",
            f"the cap of every back-off: must be >= acd.unavailable_backoff_s "
            f"({acd.unavailable_backoff_s}) and acd.busy_skip_s ({acd.busy_skip_s}), "
            f"got {acd.unavailable_backoff_max_s!r}",
        )
    rtp = config.rtp
    if not 1024 <= rtp.start < rtp.end <= 65535:
        raise ConfigError(
            "rtp.end" if rtp.start >= 1024 else "rtp.start",
            f"expected 1024 <= rtp.start < rtp.end <= 65535, got {rtp.start}..{rtp.end}",
        )
    if rtp.private_ports and rtp.private_ports < 4:
        raise ConfigError(
            "rtp.private_ports",
            f"must be 0 (sized for the agents) or >= 4, got {rtp.private_ports}",
        )
    return config


def config_warnings(config: EngineConfig) -> list[str]:
    """What is valid but will hurt in production (logged at start): an RTP
    range that cannot carry agents x 2 calls."""
    warnings = []
    rtp = config.rtp
    have = rtp.end - rtp.start + 1
    need = rtp_ports_needed(len(config.agents))
    if have < need:
        warnings.append(
            f"config key 'rtp': the range {rtp.start}..{rtp.end} has {have} ports, "
            f"{len(config.agents)} agents x {CALLS_PER_AGENT} calls x {RTP_PORTS_PER_CALL} "
            f"ports need {need}; past {have // RTP_PORTS_PER_CALL} calls Asterisk answers "
            "new callers 488 and agent dials fail CHANUNAVAIL: widen rtp.conf and set "
            "rtp.start / rtp.end to match"
        )
    return warnings


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _take_sections(
    config: EngineConfig, data: Mapping[str, Any], known: Mapping[str, Any], prefix: str = ""
) -> tuple[EngineConfig, dict[str, Any]]:
    """Apply the feature sections of *data* (tables named by a feature's
    ``ConfigSection``) to ``config.sections``; return the rest."""
    rest: dict[str, Any] = {}
    sections = dict(config.sections)
    for name, value in data.items():
        spec = known.get(name)
        if spec is None:
            if name == "sections":
                raise ConfigError(
                    "sections", "not a key: write each feature's section as a table [name]"
                )
            rest[name] = value
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{prefix}{name}", "expected a table")
        current = sections.get(name)
        sections[name] = _apply(
            current if current is not None else spec.type(), value, f"{prefix}{name}."
        )
    return replace(config, sections=sections), rest


def check_features(config: EngineConfig, known: Mapping[str, Any]) -> None:
    """Every enabled feature is known, and its section valid (ConfigError
    naming the key)."""
    from cti.features import known_features

    available = known_features()
    for i, name in enumerate(config.features):
        if name not in available and ":" not in name:
            raise ConfigError(
                f"features[{i}]",
                f"no feature {name!r}; known: {', '.join(sorted(available))} "
                "(or module:attribute of a Feature)",
            )
    for name, spec in known.items():
        spec.validate(config.section(name, spec.type))


def _enabled_names(data: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The ``features`` list the layers will end with (to know their sections first)."""
    if overrides and "features" in overrides:
        return tuple(_coerce("features", overrides["features"], tuple[str, ...]))
    if "features" in data:
        return tuple(_coerce("features", data["features"], tuple[str, ...]))
    return DEFAULT_FEATURES


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    sections: Mapping[str, Any] | None = None,
) -> EngineConfig:
    """Build the configuration from its layers; raise ConfigError on a bad value.
    ``sections``: name -> ConfigSection of the features whose tables may
    appear (default: every built-in feature's and those of the features the
    configuration enables as ``module:attribute``). A section may name
    environment variables of its own (``ConfigSection.env``)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
    if sections is None:
        from cti.features import known_sections, load_feature

        named = [n for n in _enabled_names(data, overrides) if ":" in n]
        sections = known_sections([load_feature(n) for n in named])
    config = EngineConfig()
    if data:
        config, rest = _take_sections(config, data, sections)
        config = _apply(config, rest, "")
    if env:
        env_keys = dict(ENV_KEYS)
        for spec in sections.values():
            env_keys.update({var: f"{spec.name}.{key}" for var, key in spec.env.items()})
        for name, dotted in env_keys.items():
            if name in env and env[name] != "":
                try:
                    config, rest = _take_sections(config, _unflatten({dotted: env[name]}), sections)
                    config = _apply(config, rest, "")
                except ConfigError as exc:
                    raise ConfigError(name, str(exc).split(": ", 1)[1]) from None
    if overrides:
        config, rest = _take_sections(config, _unflatten(overrides), sections)
        config = _apply(config, rest, "")
    config = validate(config)
    check_features(config, sections)
    return config
