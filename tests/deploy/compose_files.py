"""Read compose.yaml (+ the dev container override) the way `docker compose` would.

No Docker engine runs the tests, so this module does the part of compose the tests need:
``${VAR}`` / ``${VAR:-default}`` / ``${VAR:?error}`` interpolation from ``.env.example``, ``$$``
escapes, and merging the override's services into the base file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DEV_OVERRIDE = ROOT / ".devcontainer" / "compose.dev.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
ESCAPED = "\x00"


def env_example() -> dict[str, str]:
    """KEY=VALUE lines of .env.example (comments and blank lines skipped)."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def variables(text: str) -> dict[str, set[str | None]]:
    """Variable name → the operators (``:-``, ``:?``, ... or None) of its ``${...}`` uses."""
    found: dict[str, set[str | None]] = {}
    for match in VARIABLE.finditer(text.replace("$$", ESCAPED)):
        found.setdefault(match["name"], set()).add(match["op"])
    return found


def interpolate(text: str, env: dict[str, str]) -> str:
    """Substitute like compose: a missing ``${VAR:?msg}`` raises, ``$$`` becomes ``$``."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        found = env.get(name)
        if found is not None and (found or not op.startswith(":")):
            return found
        if op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op.endswith("-") else ""

    return VARIABLE.sub(value, text.replace("$$", ESCAPED)).replace(ESCAPED, "$")


def load(path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        interpolate(path.read_text(), env_example() if env is None else env)
    )
    return data


def services(*, dev: bool = False, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Services of compose.yaml, with the dev override merged in when ``dev``."""
    merged: dict[str, Any] = {
        name: dict(spec) for name, spec in load(COMPOSE, env)["services"].items()
    }
    if dev:
        for name, spec in load(DEV_OVERRIDE, env)["services"].items():
            merged.setdefault(name, {}).update(spec)
    return merged


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict, whichever of the two compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}
