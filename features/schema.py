"""Wire records shared by the service, the stream workers and the simulator.

The REST bodies under ``/v1`` and the Kafka values are the same JSON shapes (README, "REST API").
Decoding is strict and never echoes the input: a :class:`Problem` carries only the
location and a stable error type of each problem, so a rejected card number cannot leak
into a response, a log line or the dead-letter headers. Card numbers are refused per field
(:mod:`features.pan`): a PAN-looking value in a card-like field (``card_id``, ``customer_id``,
``device_id``) is ``pan_rejected``; ``transaction_id`` and ``merchant_id`` have formats of their
own (a 15-digit acquirer merchant id passes Luhn one time in ten) and are accepted.

>>> raw = (b'{"transaction_id": "tx-1", "card_id": "card_1", "merchant_id": "m_1",'
...        b' "amount": 12.5, "currency": "EUR", "timestamp": "2026-01-05T10:00:00Z"}')
>>> NOW = datetime(2026, 1, 6, tzinfo=UTC)
>>> tx = decode_transaction(raw, now=NOW)
>>> tx.amount, tx.timestamp.isoformat()
(Decimal('12.5'), '2026-01-05T10:00:00+00:00')
>>> looks_like_pan("4111111111111111"), looks_like_pan("card_42")
(True, False)
>>> decode_transaction(raw.replace(b'"m_1"', b'"100000000000009"'), now=NOW).merchant_id
'100000000000009'
>>> decode_transaction(raw.replace(b'"card_1"', b'"4111111111111111"'), now=NOW)
Traceback (most recent call last):
...
features.schema.Problem: pan_rejected
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from features import messages

# re-exported: the simulator and the service import the PAN rule from here
from features.pan import CARD_LIKE_FIELDS as CARD_LIKE_FIELDS
from features.pan import OWN_FORMAT_ID_FIELDS as OWN_FORMAT_ID_FIELDS
from features.pan import looks_like_pan as looks_like_pan
from features.pan import luhn_valid as luhn_valid
from features.pan import pan_forbidden as pan_forbidden
from features.pan import redact_pans as redact_pans

MAX_ID_LENGTH = 64
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
MAX_AMOUNT = Decimal(1_000_000)
DEFAULT_MAX_FUTURE_SKEW = timedelta(minutes=5)
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


CURRENCIES = _words(
    """AED ARS AUD BGN BHD BRL CAD CHF CLP CNY COP CZK DKK EGP EUR GBP HKD HUF IDR ILS INR ISK
    JPY KES KRW KWD MAD MXN MYR NGN NOK NZD PEN PHP PKR PLN QAR RON RSD SAR SEK SGD THB TRY
    TWD UAH USD VND ZAR"""
)
COUNTRIES = _words(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"""
)


def clean_text(value: str) -> str:
    """Free text that can be stored: no NUL, valid UTF-8 (a lone surrogate cannot be)."""
    if "\x00" in value:
        raise ValueError("nul")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("surrogate") from None
    return value


#: free text from a client (a reason, a note): stored as given once it can be stored
FreeText = Annotated[str, AfterValidator(clean_text)]


def _strict_amount(value: Any) -> Any:
    # JSON numbers arrive as Decimal (see _loads); a bool or a string is a type error.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError("type")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("finite")
    return value


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and "T" in value.upper() and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise ValueError("format") from None
    else:
        raise ValueError("format")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("naive")
    return parsed.astimezone(UTC)


def _finite_float(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("type")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("finite")
    return number


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN),
    AfterValidator(clean_text),
]
Amount = Annotated[
    Decimal,
    BeforeValidator(_strict_amount),
    Field(gt=0, le=MAX_AMOUNT, max_digits=16, decimal_places=4),
]
EventTime = Annotated[datetime, BeforeValidator(_rfc3339)]
Currency = Annotated[str, AfterValidator(lambda c: c if c in CURRENCIES else _bad("currency"))]
Country = Annotated[str, AfterValidator(lambda c: c if c in COUNTRIES else _bad("country"))]
Latitude = Annotated[float, BeforeValidator(_finite_float), Field(ge=-90, le=90)]
Longitude = Annotated[float, BeforeValidator(_finite_float), Field(ge=-180, le=180)]
Channel = Literal["pos", "ecom", "atm", "moto"]
LabelSource = Literal["chargeback", "review", "customer", "simulator"]
Decision = Literal["approve", "review", "decline"]
#: Which layer decided: the champion's score against the thresholds (fixed or by budget), the
#: warm-up rule (a champion that has not learned enough yet: its score is reported, not acted
#: on), a rule (``rule_id`` names it) or an allow/block list entry (a ``list_*`` reason says which).
DecidedBy = Literal["model", "warmup", "rule", "list"]


def _bad(kind: str) -> str:
    raise ValueError(kind)


class WireModel(BaseModel):
    """Base of every wire record: unknown fields forbidden, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, str_strip_whitespace=False)


class Transaction(WireModel):
    """A card transaction as it arrives on ``POST /v1/transactions`` or the Kafka topic."""

    transaction_id: Identifier
    card_id: Identifier
    merchant_id: Identifier
    amount: Amount
    currency: Currency
    timestamp: EventTime
    merchant_category: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")] | None = None
    country: Country | None = None
    channel: Channel | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    device_id: Identifier | None = None
    customer_id: Identifier | None = None

    @field_validator(*sorted(CARD_LIKE_FIELDS))
    @classmethod
    def _no_card_number(cls, value: str | None, info: ValidationInfo) -> str | None:
        """The PAN rule on the card-like fields only (see :mod:`features.pan`)."""
        if value is not None and info.field_name and pan_forbidden(info.field_name, value):
            raise ValueError("pan")
        return value

    def canonical_json(self) -> str:
        """Stable JSON of the payload: equal payloads give equal strings (conflict check)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["amount"] = format(self.amount.normalize(), "f")
        data["timestamp"] = self.timestamp.astimezone(UTC).isoformat()
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


class Label(WireModel):
    """A fraud outcome for a transaction, known at ``labeled_at`` (event time)."""

    transaction_id: Identifier
    is_fraud: StrictBool
    labeled_at: EventTime
    source: LabelSource = "chargeback"


class ModelRef(WireModel):
    name: str
    version: str


class ShadowScore(WireModel):
    name: str
    version: str
    score: float


class Reason(WireModel):
    code: str
    feature: str
    value: float


class Score(WireModel):
    """The answer to a transaction: the value on the ``scores`` topic and the REST response."""

    transaction_id: str
    score: float = Field(ge=0, le=1)
    decision: Decision
    model: ModelRef
    shadow: list[ShadowScore] = []
    reasons: list[Reason] = []
    decided_by: DecidedBy = "model"
    rule_id: str | None = None  # the rule that decided, when decided_by is "rule"
    event_time: datetime
    scored_at: datetime
    replayed: bool = False


# Every reason a Problem can carry. Metrics initialise their per-reason series from this tuple
# (a dashboard needs the zero before the first rejection), so a new reason is a new Literal
# value here, or mypy refuses the ``Problem(...)`` that raises it.
ProblemReason = Literal[
    "invalid_json",
    "duplicate_key",
    "non_finite_number",
    "not_an_object",
    "validation_failed",
    "pan_rejected",
    "null_value",  # a Kafka record without a value
]
PROBLEM_REASONS: tuple[ProblemReason, ...] = get_args(ProblemReason)


class Problem(ValueError):
    """One rejected input: a stable reason and the locations/types of what was wrong.

    Never carries the input value (so it is safe to log, return and put in a Kafka header).
    """

    def __init__(self, reason: ProblemReason, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise Problem("duplicate_key", [{"loc": [], "type": "duplicate_key"}])
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise Problem("non_finite_number", [{"loc": [], "type": "non_finite_number"}])


def loads(raw: bytes | str) -> Any:
    """Parse JSON strictly: duplicate keys, NaN/Infinity rejected; numbers as Decimal."""
    try:
        return json.loads(
            raw,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_float=Decimal,
        )
    except Problem:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Problem("invalid_json", [{"loc": [], "type": "invalid_json"}]) from None


def _problem_from(exc: ValidationError) -> Problem:
    errors = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        kind = err["type"]
        if kind == "value_error":
            # our validators raise ValueError(<short kind>); keep only that word
            kind = str(err.get("msg", "")).removeprefix("Value error, ")
        loc = [str(p) for p in err["loc"]]
        errors.append({"loc": loc, "type": kind, "msg": messages.message(kind, err.get("msg"))})
    reason: ProblemReason = (
        "pan_rejected" if any(e["type"] == "pan" for e in errors) else "validation_failed"
    )
    return Problem(reason, errors)


def check_event_time(
    moment: datetime, now: datetime, max_future_skew: timedelta, field: str
) -> None:
    """Reject event times beyond the future skew bound or before 2000."""
    if moment > now + max_future_skew:
        raise Problem("validation_failed", [{"loc": [field], "type": "future_event_time"}])
    if moment < EARLIEST_EVENT_TIME:
        raise Problem("validation_failed", [{"loc": [field], "type": "ancient_event_time"}])


def decode_transaction(
    raw: bytes | str,
    *,
    now: datetime,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
) -> Transaction:
    """Bytes to a validated :class:`Transaction`, or :class:`Problem`."""
    data = loads(raw)
    if not isinstance(data, dict):
        raise Problem("not_an_object", [{"loc": [], "type": "not_an_object"}])
    try:
        tx = Transaction.model_validate(data)
    except ValidationError as exc:
        raise _problem_from(exc) from None
    check_event_time(tx.timestamp, now, max_future_skew, "timestamp")
    return tx


def decode_label(
    raw: bytes | str,
    *,
    now: datetime,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
) -> Label:
    """Bytes to a validated :class:`Label`, or :class:`Problem`."""
    data = loads(raw)
    if not isinstance(data, dict):
        raise Problem("not_an_object", [{"loc": [], "type": "not_an_object"}])
    try:
        label = Label.model_validate(data)
    except ValidationError as exc:
        raise _problem_from(exc) from None
    check_event_time(label.labeled_at, now, max_future_skew, "labeled_at")
    return label


#: the most labels one batch request carries (``POST /v1/labels/batch``)
MAX_LABEL_BATCH = 400  # about 52 KB of labels: under the default 64 KB body limit


def decode_labels(
    raw: bytes | str,
    *,
    now: datetime,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
) -> list[Label]:
    """A JSON array of 1 to :data:`MAX_LABEL_BATCH` labels, in order, or :class:`Problem`.

    All or nothing: one bad label refuses the batch; its errors are located by index.

    >>> now = datetime(2026, 1, 2, tzinfo=UTC)
    >>> body = '[{"transaction_id": "a", "is_fraud": true, "labeled_at": "2026-01-01T00:00:00Z"}]'
    >>> [label.transaction_id for label in decode_labels(body, now=now)]
    ['a']
    >>> try:
    ...     decode_labels('[{"transaction_id": "a"}, 3]', now=now)
    ... except Problem as exc:
    ...     [(e["loc"], e["type"]) for e in exc.errors]
    [(['0', 'is_fraud'], 'missing'), (['0', 'labeled_at'], 'missing'), (['1'], 'not_an_object')]
    """
    data = loads(raw)
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_LABEL_BATCH:
        raise Problem("not_an_object", [{"loc": [], "type": "label_batch",
                                         "msg": messages.message("label_batch")}])  # fmt: skip
    labels, errors = [], []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            errors.append({"loc": [str(index)], "type": "not_an_object",
                           "msg": "each label must be a JSON object"})  # fmt: skip
            continue
        try:
            label = Label.model_validate(item)
            check_event_time(label.labeled_at, now, max_future_skew, "labeled_at")
        except ValidationError as exc:
            errors += [{**e, "loc": [str(index), *e["loc"]]} for e in _problem_from(exc).errors]
            continue
        except Problem as exc:
            errors += [{**e, "loc": [str(index), *e["loc"]]} for e in exc.errors]
            continue
        labels.append(label)
    if errors:
        raise Problem("validation_failed", errors)
    return labels
