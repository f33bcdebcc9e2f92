"""The decision layer around the champion's score (today: thresholds and warm-up).

Warm-up: until the champion has learned ``labels`` labels, ``frauds`` of them fraud, its
score is reported but not acted on — the transaction is approved with the reason
``model_warming_up`` and the answer says ``decided_by: "warmup"``. A fresh install therefore
never floods the review queue with the 0.5 a model answers before it has learned anything.
The learner updates the state after every batch it learns (and after a restore); the
scoring path only reads one boolean.

>>> warm = WarmUp(labels=2, frauds=1)
>>> warm.observe(learned=1, frauds=1), warm.done
(False, False)
>>> warm.observe(learned=2, frauds=1), warm.done
(True, True)
>>> warm.observe(learned=0, frauds=0), warm.done  # once over, over for good
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from features.schema import Reason
from models import pool as model_pool

WARMING_UP = "model_warming_up"


@dataclass
class WarmUp:
    labels: int = 1_000
    frauds: int = 10
    done: bool = False
    learned: int = 0  # the champion's, at the last observation

    def observe(self, learned: int, frauds: int) -> bool:
        """Record the champion's progress; True once warm-up is over."""
        self.learned = learned
        if not self.done and learned >= self.labels and frauds >= self.frauds:
            self.done = True
        return self.done

    def observe_pool(self, pool: model_pool.ModelPool) -> bool:
        member = pool.members[pool.champion]
        return self.observe(member.learned, member.frauds)

    def reason(self) -> Reason:
        return Reason(code=WARMING_UP, feature="champion_labels_learned", value=self.learned)
