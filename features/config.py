"""Configuration and result records shared by the Redis store and the reference.

>>> config = FeatureConfig(lateness=timedelta(days=3))
>>> config.lateness_ms, config.card_retention_ms // DAY_MS
(259200000, 33)
>>> config.entity_ttl_ms // DAY_MS  # the longest window + lateness + a week, by default
40
>>> FeatureResult("tx-1", "late", {}, "late_event").status
'late'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: The longest window of any feature; card history is kept this long plus the lateness bound.
LONGEST_WINDOW_MS = 30 * DAY_MS
#: Added to the longest window and the lateness bound by the default entity TTL.
ENTITY_TTL_MARGIN_MS = 7 * DAY_MS
#: Card record timestamps are stored as 32-bit millisecond offsets (see features/README.md).
MAX_OFFSET_MS = 2**32 - 1

Status = Literal["fresh", "duplicate", "late"]
#: Reason given with a duplicate whose stored payload digest differs from the new one.
CONFLICT = "conflict: transaction id seen before with a different payload"


@dataclass(frozen=True)
class FeatureConfig:
    """How the feature store treats time, size and retries.

    Parameters
    ----------
    lateness
        A transaction more than this far behind the newest event of its card is rejected
        (status ``late``). At most 17 days (card timestamps are 32-bit offsets).
    card_max_entries
        Cap on the transactions kept per card; the oldest go first.
    dedup_ttl
        Wall-clock lifetime of the per-transaction dedup marker (which stores the features).
    key_prefix
        Prefix of every Redis key, so that several deployments or tests share one server.
    entity_ttl
        Wall-clock lifetime of a card's or merchant's state after its last update; every
        update renews it. None: the longest window plus the lateness bound plus a week;
        ``timedelta(0)``: never expire. An entity silent that long has nothing left in any
        window, so expiry changes no feature; it bounds Redis memory by active entities.

    >>> FeatureConfig().dedup_ttl_seconds
    172800
    """

    lateness: timedelta = timedelta(days=7)
    card_max_entries: int = 1000
    dedup_ttl: timedelta = field(default=timedelta(days=2))
    key_prefix: str = "rg"
    entity_ttl: timedelta | None = None

    def __post_init__(self) -> None:
        if not timedelta(0) <= self.lateness <= timedelta(days=17):
            raise ValueError("lateness must be between 0 and 17 days")
        if self.card_max_entries < 1:
            raise ValueError("card_max_entries must be at least 1")
        if self.dedup_ttl < timedelta(seconds=1):
            raise ValueError("dedup_ttl must be at least one second")
        if not self.key_prefix or any(c in self.key_prefix for c in "{} "):
            raise ValueError("key_prefix must be non-empty, without braces or spaces")
        ttl = self.entity_ttl
        if ttl and ttl < timedelta(milliseconds=LONGEST_WINDOW_MS) + self.lateness:
            raise ValueError("entity_ttl must cover the longest window plus the lateness bound")

    @property
    def lateness_ms(self) -> int:
        return self.lateness // timedelta(milliseconds=1)

    @property
    def card_retention_ms(self) -> int:
        """Card records older than this behind the card's newest event are dropped."""
        return LONGEST_WINDOW_MS + self.lateness_ms

    @property
    def merchant_keep_hours(self) -> int:
        """Hourly merchant buckets kept behind the merchant's newest hour."""
        return 24 + math.ceil(self.lateness_ms / HOUR_MS) + 1

    @property
    def merchant_keep_days(self) -> int:
        """Daily merchant buckets kept behind the merchant's newest day."""
        return 30 + math.ceil(self.lateness_ms / DAY_MS) + 1

    @property
    def entity_ttl_ms(self) -> int:
        """Entity state lifetime after its last update, in ms (0: never expires)."""
        if self.entity_ttl is None:
            return self.card_retention_ms + ENTITY_TTL_MARGIN_MS
        return self.entity_ttl // timedelta(milliseconds=1)

    @property
    def dedup_ttl_seconds(self) -> int:
        return math.ceil(self.dedup_ttl.total_seconds())


@dataclass(frozen=True, slots=True)
class FeatureResult:
    """The features of one transaction and what the store did with it.

    ``status`` is ``fresh`` (state updated now), ``duplicate`` (seen before: the stored
    features, nothing changed) or ``late`` (rejected: too far behind the card's newest event;
    ``features`` is empty and ``reason`` says why).

    >>> FeatureResult("tx-1", "fresh", {"amount": 12.5}).features["amount"]
    12.5
    """

    transaction_id: str
    status: Status
    features: dict[str, float]
    reason: str | None = None


def late_reason(event_ms: int, newest_ms: int, lateness_ms: int) -> str:
    """The stable text of a lateness rejection (the same in Redis and the reference)."""
    behind = (newest_ms - event_ms) / DAY_MS
    bound = lateness_ms / DAY_MS
    return f"late_event: {behind:.2f} days behind the card's newest event (bound {bound:g} days)"
