"""Core: rules as people write them — the body of the rules API and the rules file.

A rules file (``RIVERGUARD_DECISIONS__RULES_FILE``) is a JSON list of rule objects
(:class:`RuleSpec`), validated all or nothing (:func:`parse_file`) and upserted at start by
:meth:`app.core.rulebook.RuleBook.load_file`: an unchanged rule makes no new version.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

from app.core.rule_check import RuleError
from app.core.rules import CODE_PATTERN, ID_PATTERN, MAX_NAME_LENGTH, Action, Rule
from features.schema import loads, redact_pans

if TYPE_CHECKING:
    from app.core.rulebook import RuleBook


class RuleFields(BaseModel):
    """A rule as written by a person, but its id (the body of ``PUT /v1/rules/{id}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", max_length=MAX_NAME_LENGTH)
    expression: str = Field(min_length=1, max_length=10_000)
    action: Action
    reason_code: str | None = Field(default=None, pattern=CODE_PATTERN)
    priority: StrictInt = Field(default=100, ge=-1_000_000, le=1_000_000)
    enabled: StrictBool = True
    shadow: StrictBool = Field(
        default=False, description="run on live traffic and count hits without deciding"
    )

    @field_validator("name", "expression")
    @classmethod
    def _storable(cls, value: str) -> str:
        # Postgres text holds neither NUL nor lone surrogates: refused here, not a 5xx later
        if "\x00" in value or (not value.isprintable() and _unencodable(value)):
            raise ValueError("text")
        return value

    def rule(self, rule_id: str) -> Rule:
        return Rule(
            id=rule_id,
            name=self.name,
            expression=self.expression,
            action=self.action,
            reason_code=self.reason_code or "",
            priority=self.priority,
            enabled=self.enabled and not self.shadow,  # shadow: runs, never decides
            shadow=self.shadow,
        )


def _unencodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class RuleSpec(RuleFields):
    """A whole rule (``POST /v1/rules`` and each entry of a rules file)."""

    id: str = Field(pattern=ID_PATTERN, max_length=64)


class RuleFileError(ValueError):
    """A rules file that cannot be loaded; the message names the file, rule and error type."""


def parse_file(raw: bytes, source: str, book: RuleBook) -> list[Rule]:
    """Every rule of the file, validated as the API validates them (all or nothing)."""
    try:
        data = loads(raw)
    except ValueError:
        raise RuleFileError(f"rules file {source}: not valid JSON") from None
    if not isinstance(data, list):
        raise RuleFileError(f"rules file {source}: must be a JSON list of rule objects")
    rules, seen = [], set()
    for position, item in enumerate(data, 1):
        name = label(item, position)
        try:
            spec = RuleSpec.model_validate(item)
            rule = spec.rule(spec.id)
            book.compile(rule, ("rules", position, "expression"), probe=True)
        except ValidationError as exc:
            kinds = sorted({f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors()})
            raise RuleFileError(f"rules file {source}: {name}: {', '.join(kinds)}") from None
        except RuleError as exc:
            kinds = sorted({f"{e['loc'][-1]}: {e['type']}" for e in exc.errors})
            raise RuleFileError(f"rules file {source}: {name}: {', '.join(kinds)}") from None
        if rule.id in seen:
            raise RuleFileError(f"rules file {source}: {name}: duplicate_id")
        seen.add(rule.id)
        rules.append(rule)
    return rules


def label(item: Any, position: int) -> str:
    """How a file's rule is named in an error: its id when it is one, else its position."""
    rule_id = item.get("id") if isinstance(item, dict) else None
    valid = isinstance(rule_id, str) and re.fullmatch(ID_PATTERN, rule_id) is not None
    if valid and redact_pans(str(rule_id)) == rule_id:
        return f"rule {rule_id!r} (#{position})"
    return f"rule #{position}"  # not an id, or one holding a card number
