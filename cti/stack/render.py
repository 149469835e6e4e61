"""Render the configuration templates in ``config/`` (pure).

Templates use ``{{name}}`` placeholders because Asterisk's own ``${VAR}`` syntax
must pass through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

_PLACEHOLDER = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")


class TemplateError(ValueError):
    """A template names a value the caller did not give."""


def render(template: str, values: Mapping[str, object], *, name: str = "template") -> str:
    """Replace every ``{{key}}`` in *template* with ``values[key]``."""
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise TemplateError(f"{name}: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def load_template(name: str) -> str:
    """Read ``config/asterisk/<name>`` shipped with the package."""
    return resources.files("config").joinpath("asterisk", name).read_text(encoding="utf-8")


def split_static(text: str) -> dict[str, str]:
    """Split ``static.conf.tmpl`` into files on its ``==> name`` markers."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("==> "):
            current = files.setdefault(line[4:].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) + "\n" for name, lines in files.items()}
