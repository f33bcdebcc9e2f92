"""The card-number (PAN) rule, per field, and the redaction of dead-letter copies.

A PAN here is a 13–19 digit run passing Luhn. About one random 13–19 digit number in ten
passes Luhn, so the rule cannot apply to every identifier: a 15-digit acquirer merchant id or
a timestamp-based order id would be refused one time in ten. It applies to the fields that
could hold a card number (:data:`CARD_LIKE_FIELDS`); identifiers with formats of their own
(:data:`OWN_FORMAT_ID_FIELDS`) are accepted whatever digits they contain.

>>> pan_forbidden("card_id", "4111111111111111"), pan_forbidden("merchant_id", "4111111111111111")
(True, False)
>>> redact_record(b'{"card_id": "4111111111111111", "merchant_id": "100000000000009"}')
b'{"card_id":"[REDACTED]","merchant_id":"100000000000009"}'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

# The one definition of which fields reject PAN-looking values (REST, Kafka and the card route).
CARD_LIKE_FIELDS = frozenset({"card_id", "customer_id", "device_id"})
# Identifiers with their own formats: accepted, and kept verbatim in dead-letter copies.
OWN_FORMAT_ID_FIELDS = frozenset({"transaction_id", "merchant_id"})
REDACTED = "[REDACTED]"
_DIGIT_RUN = re.compile(r"\d{13,19}")
_DIGIT_RUN_BYTES = re.compile(rb"\d{13,19}")


def luhn_valid(digits: str) -> bool:
    """True when a string of digits passes the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def looks_like_pan(value: str) -> bool:
    """True when ``value`` contains a 13–19 digit run that passes Luhn (a card number)."""
    return any(luhn_valid(match.group()) for match in _DIGIT_RUN.finditer(value))


def pan_forbidden(field: str, value: str) -> bool:
    """True when ``field`` is card-like and ``value`` looks like a PAN (the input is refused)."""
    return field in CARD_LIKE_FIELDS and looks_like_pan(value)


def redact_pans(text: str) -> str:
    """Replace every PAN-looking digit run in ``text`` with ``[REDACTED]``."""
    return _DIGIT_RUN.sub(lambda m: REDACTED if luhn_valid(m.group()) else m.group(), text)


def redact_pan_bytes(raw: bytes) -> bytes:
    """Replace every PAN-looking digit run in raw bytes (the conservative rule)."""
    return _DIGIT_RUN_BYTES.sub(
        lambda m: REDACTED.encode() if luhn_valid(m.group().decode()) else m.group(), raw
    )


class _Number(str):
    """A JSON number (or NaN/Infinity) kept as its source text, so a copy re-emits it as sent."""


class _Object(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs: duplicate keys survive into the copy."""


def _parse(raw: bytes) -> Any:
    # Lenient on purpose: records dead-lettered for duplicate keys or NaN must parse here too.
    return json.loads(
        raw,
        object_pairs_hook=_Object,
        parse_int=_Number,
        parse_float=_Number,
        parse_constant=_Number,
    )


def _safe_texts(document: Any) -> list[str]:
    """The values kept verbatim: strings of the own-format id fields of the top-level object."""
    if not isinstance(document, _Object):
        return []
    return [v for k, v in document if _kept(k, v, top=True)]


def _kept(key: str, value: Any, top: bool) -> bool:
    # a number in an id field is a type error anyway: only strings are kept
    return top and key in OWN_FORMAT_ID_FIELDS and type(value) is str


def _unsafe_texts(node: Any, top: bool = True) -> Iterator[str]:
    """Every key, string and number text of ``node`` except the kept id values."""
    if isinstance(node, _Object):
        for key, value in node:
            yield key
            if not _kept(key, value, top):
                yield from _unsafe_texts(value, top=False)
    elif isinstance(node, list):
        for item in node:
            yield from _unsafe_texts(item, top=False)
    elif isinstance(node, str):  # strings and _Number texts
        yield node


def _emit(node: Any, top: bool = True) -> str:
    """Compact JSON text of ``node`` with PAN-looking runs redacted outside the kept ids."""
    if isinstance(node, _Object):
        pairs = (f"{_emit(key, False)}:{_emit_value(key, value, top)}" for key, value in node)
        return "{" + ",".join(pairs) + "}"
    if isinstance(node, list):
        return "[" + ",".join(_emit(item, False) for item in node) + "]"
    if isinstance(node, _Number):
        redacted = redact_pans(node)
        # a redacted number is no longer a number: it becomes the string "[REDACTED]"
        return str(node) if redacted == node else json.dumps(redacted)
    if isinstance(node, str):
        return json.dumps(redact_pans(node))
    return json.dumps(node)  # true, false, null


def _emit_value(key: str, value: Any, top: bool) -> str:
    return json.dumps(value) if _kept(key, value, top) else _emit(value, False)


def redact_record(raw: bytes) -> bytes:
    """A dead-letter copy of ``raw`` that carries no PAN outside the own-format id fields.

    Parseable JSON: every key, string and number is redacted except the top-level
    ``transaction_id``/``merchant_id`` strings, so a record dead-lettered for another reason
    (a conflict, a bad amount) keeps the ids an operator needs, while a card-like field or an
    unknown one never carries a card number. The original bytes are kept when nothing needs
    redacting and every PAN-looking run in them lies inside those ids; otherwise the parsed
    record is re-emitted (compact, ASCII) with the redactions, which also catches digits
    written as ``\\u`` escapes. Bytes that are not JSON get every PAN-looking run redacted:
    without a structure no field can be told safe.
    """
    try:
        return _redact_document(raw, _parse(raw))
    except (ValueError, UnicodeDecodeError, RecursionError):
        # not JSON, or nested deeper than the walk can go: the conservative rule
        return redact_pan_bytes(raw)


def _redact_document(raw: bytes, document: Any) -> bytes:
    safe = _safe_texts(document)
    runs = (m.group().decode() for m in _DIGIT_RUN_BYTES.finditer(raw))
    raw_is_safe = all(not luhn_valid(run) or any(run in text for text in safe) for run in runs)
    if raw_is_safe and not any(looks_like_pan(text) for text in _unsafe_texts(document)):
        return raw
    return _emit(document).encode()
