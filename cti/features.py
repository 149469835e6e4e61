"""The features the runtime knows by name, and how a configuration's
``features = [...]`` list becomes :class:`cti.feature.Feature` objects.

A name is a built-in feature below, or ``package.module:ATTRIBUTE`` naming a
Feature anywhere on the path: a new feature is one folder plus, to be known
by a short name, one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from cti.config import ConfigError, EngineConfig
from cti.feature import ConfigSection, Feature

__all__ = [
    "dialplan_fragments",
    "enabled_features",
    "known_features",
    "known_sections",
    "load_feature",
]

_BUILTIN = {
    "agents": "cti.agents.feature:FEATURE",
    "control": "cti.control.feature:FEATURE",
    "screenpop": "cti.screenpop.feature:FEATURE",
    "console": "cti.console.feature:FEATURE",
    "recording": "recording.feature:FEATURE",
    "workorders": "workorder_sync.feature:FEATURE",
}


def known_features() -> dict[str, str]:
    return dict(_BUILTIN)


def load_feature(name: str) -> Feature:
    ref = _BUILTIN.get(name, name)
    module_name, _, attribute = ref.partition(":")
    if not attribute:
        raise ConfigError("features", f"no feature {name!r}")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("features", f"cannot load feature {name!r}: {exc}") from None
    if not isinstance(found, Feature):
        raise ConfigError("features", f"{ref} is not a Feature")
    return found


def known_sections(extra: Iterable[Feature] = ()) -> dict[str, ConfigSection]:
    """Every built-in feature's config section (and *extra* features'), by name."""
    features = [load_feature(name) for name in _BUILTIN] + list(extra)
    return {f.config.name: f.config for f in features if f.config is not None}


def enabled_features(config: EngineConfig, extra: Iterable[Feature] = ()) -> list[Feature]:
    """The configured features (then *extra*), each after those it requires."""
    features = [load_feature(name) for name in config.features] + list(extra)
    names = [f.name for f in features]
    for feature in features:
        for needed in feature.requires:
            if needed not in names:
                raise ConfigError(
                    "features", f"feature {feature.name!r} needs {needed!r}: enable it too"
                )
            if names.index(needed) > names.index(feature.name):
                raise ConfigError(
                    "features", f"feature {needed!r} must come before {feature.name!r}"
                )
    if len(set(names)) != len(names):
        raise ConfigError("features", f"a feature appears twice: {names}")
    return features


def section_of(config: EngineConfig, feature: Feature) -> Any:
    return config.section(feature.config.name, feature.config.type) if feature.config else None


def dialplan_fragments(config: EngineConfig, extra: Iterable[Feature] = ()) -> Mapping[str, str]:
    """Each enabled feature's dialplan fragment, by feature name."""
    return {
        feature.name: feature.dialplan(section_of(config, feature), config)
        for feature in enabled_features(config, extra)
        if feature.dialplan is not None
    }
