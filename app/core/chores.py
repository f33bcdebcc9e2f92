"""The learner's steps run guarded: one that fails is counted and logged, and the rest go on.

A sweep claims labels, adopts parked ones, then does its housekeeping (bundles, parked-label
expiry, checkpoints, the promotion policy). Unguarded, one failing step — a parked label whose
stored record is unreadable, say — raised before the housekeeping on every sweep: no bundle
reached a scorer, no checkpoint was written, nothing expired, for as long as the bad row lasted.

A failure is counted in ``riverguard_learner_errors_total{step}`` and logged with its type,
its message with card-number-looking digit runs redacted (a database error can quote a row),
and the frames of its traceback — never the values in them. :class:`~app.core.ports.Fenced`
is not a failure of a step: the learner steps down, so it propagates.

>>> from prometheus_client import CollectorRegistry, Counter
>>> errors = Counter("e", "errors", ["step"], registry=CollectorRegistry())
>>> with guarded("expiry", errors):
...     raise KeyError("4111111111111111")
>>> errors.labels("expiry")._value.get()
1.0
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator

from prometheus_client import Counter

from app.core.ports import Fenced
from features.schema import redact_pans

log = logging.getLogger(__name__)

#: Every step a sweep runs, in order (each one's error series exists from start-up).
STEPS = ("claim", "adopt", "bundle", "expiry", "checkpoint", "policy")


@contextlib.contextmanager
def guarded(step: str, errors: Counter) -> Iterator[None]:
    """Run the body as ``step``: a failure is counted and logged, not raised (but Fenced)."""
    try:
        yield
    except Fenced:
        raise
    except Exception as exc:
        errors.labels(step).inc()
        frames = redact_pans("".join(traceback.format_tb(exc.__traceback__)))
        message = redact_pans(str(exc))
        log.error("learner step %s failed: %s: %s\n%s", step, type(exc).__name__, message, frames)
