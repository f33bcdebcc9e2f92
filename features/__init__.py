"""Per-card and per-merchant rolling features, point-in-time and idempotent.

The feature table, window definitions and the late-event policy are in features/README.md.
Modules: :mod:`features.definitions` (names, derivations), :mod:`features.windows` (pure
window arithmetic), :mod:`features.reference` (brute-force semantics), :mod:`features.store`
(Redis adapter, Lua under ``features/lua/``), :mod:`features.rebuild` (state from history).
"""

from features.definitions import FEATURE_NAMES, FEATURE_SET_ID

__all__ = ["FEATURE_NAMES", "FEATURE_SET_ID"]
