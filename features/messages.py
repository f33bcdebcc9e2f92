"""Human messages for error types: a short sentence per type, never the rejected value.

A rejection names where (``loc``), what (``type``, stable, for programs) and, for people,
``msg``. The message comes from the type alone, or from pydantic's template for its own types
(which renders the constraint, not the input) — except the few templates that quote the input,
which fall back to a generic sentence. So a card number cannot reach a message.

>>> message("pan")
'looks like a card number (13-19 digits passing Luhn); send a token instead'
>>> message("string_too_long", "String should have at most 64 characters")
'String should have at most 64 characters'
>>> message("union_tag_invalid", "Input tag '4111111111111111' found ...")
'invalid value'
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, str] = {
    # raised by our own validators (features.schema, app.core)
    "pan": "looks like a card number (13-19 digits passing Luhn); send a token instead",
    "nul": "must not contain a NUL character",
    "surrogate": "must be valid UTF-8 (a lone surrogate is not)",
    "type": "wrong type (an amount is a JSON number, not a string or a boolean)",
    "finite": "must be a finite number (not NaN or Infinity)",
    "format": "must be an RFC 3339 date-time with an offset, e.g. 2026-11-20T10:15:00Z",
    "naive": "needs a UTC offset (e.g. Z or +01:00)",
    "currency": "must be an ISO 4217 alpha-3 currency code from the allow-list",
    "country": "must be an ISO 3166 alpha-2 country code",
    "future_event_time": "is further in the future than the allowed clock skew",
    "ancient_event_time": "is before the year 2000",
    "late_event": "is older than the lateness bound behind this card's newest transaction",
    "past": "must be in the future",
    "empty_window": "until must follow since",
    # whole-body problems (loc is the body itself)
    "invalid_json": "the body is not valid JSON",
    "duplicate_key": "the body repeats a key",
    "non_finite_number": "NaN and Infinity are not JSON numbers",
    "not_an_object": "the body must be a JSON object",
    "label_batch": "the body must be a JSON array of 1 to 400 labels",
    # the pydantic types people meet most, in our words
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
}
# pydantic types met without their template (a type kept, the message dropped, upstream)
FALLBACKS: dict[str, str] = {
    "string_pattern_mismatch": "does not match the expected pattern",
    "string_too_long": "is too long",
    "string_too_short": "is too short",
    "literal_error": "is not one of the allowed values",
    "enum": "is not one of the allowed values",
}

# pydantic templates that quote the input: never shown
_QUOTES_INPUT = frozenset({"union_tag_invalid", "model_attributes_type"})
GENERIC = "invalid value"


def message(kind: str, template: str | None = None) -> str:
    """The human message of an error ``kind``; ``template``: pydantic's own, if any."""
    if kind in MESSAGES:
        return MESSAGES[kind]
    if template and kind not in _QUOTES_INPUT and kind != "value_error":
        return template
    return FALLBACKS.get(kind, GENERIC)


def with_messages(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same errors, each with a ``msg`` (an existing one is kept)."""
    return [{**error, "msg": error.get("msg") or message(str(error["type"]))} for error in errors]
