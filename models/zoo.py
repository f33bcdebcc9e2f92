"""Named model factories: the champion and every challenger come from here.

Adding a challenger is one factory function plus configuration::

    @register("my_forest", description="ARF with 15 trees")
    def my_forest() -> Any:
        return SignedLog() | forest.ARFClassifier(n_models=15, seed=42)

then list it in ``RIVERGUARD_SCORING__CHALLENGERS``. Every factory returns a fresh, unfitted
River classifier; the pool guards its inputs and outputs (see :mod:`models.guard`).

Class imbalance (about 1% fraud): the linear model weighs the positive class in its loss; the
trees see a rebalanced stream (random under-sampling of legitimate labels), so that splits on
rare fraud patterns get enough evidence. Both shift probabilities upwards; decision
thresholds are configured on the champion's scale.

>>> sorted(ZOO)
['arf', 'hat', 'logreg']
>>> ZOO["logreg"].factory().predict_proba_one({"amount": 1.0})
{False: 0.5, True: 0.5}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from river import forest, imblearn, linear_model, optim, preprocessing, tree

from models.preprocess import SignedLog

Factory = Callable[[], Any]  # a River classifier, or a pipeline ending in one


@dataclass(frozen=True)
class ModelSpec:
    """A named factory; ``version`` changes when the factory's definition changes."""

    name: str
    factory: Factory
    description: str = ""
    version: str = "1"


ZOO: dict[str, ModelSpec] = {}


def register(
    name: str, *, description: str = "", version: str = "1"
) -> Callable[[Factory], Factory]:
    """Decorator adding a factory to :data:`ZOO` under ``name``."""

    def add(factory: Factory) -> Factory:
        ZOO[name] = ModelSpec(
            name, factory, description or (factory.__doc__ or "").strip(), version
        )
        return factory

    return add


@register("logreg", description="signed log, standard scaler, weighted logistic regression")
def logreg() -> Any:
    """Logistic regression on standardised signed-log features, fraud weighted ×10 in the loss."""
    return (
        SignedLog()
        | preprocessing.StandardScaler()
        | linear_model.LogisticRegression(
            optimizer=optim.SGD(0.02),
            loss=optim.losses.Log(weight_pos=10.0, weight_neg=1.0),
            l2=1e-5,
        )
    )


@register("hat", description="Hoeffding adaptive tree on an under-sampled stream")
def hat() -> Any:
    """Hoeffding adaptive tree; legitimate labels under-sampled to a 20% fraud share."""
    return SignedLog() | imblearn.RandomUnderSampler(
        tree.HoeffdingAdaptiveTreeClassifier(grace_period=50, delta=1e-5, seed=7),
        desired_dist={False: 0.8, True: 0.2},
        seed=7,
    )


@register("arf", description="adaptive random forest (10 trees) on an under-sampled stream")
def arf() -> Any:
    """Adaptive random forest; legitimate labels under-sampled to a 20% fraud share."""
    return SignedLog() | imblearn.RandomUnderSampler(
        forest.ARFClassifier(n_models=10, seed=7, leaf_prediction="mc"),
        desired_dist={False: 0.8, True: 0.2},
        seed=7,
    )
