"""The two-stage tagger ``cnn_bdt``: the trained CNN's score and physics variables of the example in a
gradient-boosted decision tree (arXiv:1711.03573, figure 6, combines the event CNN with jet variables).

The tree is fit on the validation split: the CNN has seen the training split, and its scores there
are biased (the same reason ``cnn_mass`` is fit there). It is saved (pickle) with the names of its
features, so that it can score new examples given the CNN's score and the same variables.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetimage.training.data import balanced_weights

__all__ = ["TwoStage", "fit_two_stage", "load_two_stage"]


class TwoStage:
    """A fitted two-stage tagger: ``features`` = ``["cnn", *variables]`` and the classifier."""

    def __init__(self, variables: Sequence[str], classifier: Any) -> None:
        self.variables = list(variables)
        self.classifier = classifier

    @property
    def features(self) -> list[str]:
        """Names of the columns :meth:`score` takes, in order."""
        return ["cnn", *self.variables]

    def score(self, cnn: np.ndarray, variables: np.ndarray) -> np.ndarray:
        """``(n,)`` signal probability from the ``(n,)`` CNN scores and ``(n, n_variables)`` variables."""
        x = np.c_[np.asarray(cnn, np.float64), np.asarray(variables, np.float64)]
        if len(x) == 0:
            return np.zeros(0)
        return self.classifier.predict_proba(x)[:, 1].astype(np.float64)

    def save(self, path: str | Path) -> None:
        """Pickle the tagger to ``path`` (the caller makes the write atomic)."""
        import sklearn

        with open(path, "wb") as f:
            pickle.dump({"features": self.features, "variables": self.variables,
                         "classifier": self.classifier, "sklearn": sklearn.__version__}, f, protocol=5)


def fit_two_stage(cnn: np.ndarray, variables: np.ndarray, names: Sequence[str], labels: np.ndarray,
                  weights: np.ndarray, seed: int) -> TwoStage:
    """Fit the tree on validation examples.

    Parameters
    ----------
    cnn
        ``(n,)`` the CNN's scores of the examples.
    variables
        ``(n, len(names))`` their physics variables (GeV for masses and momenta).
    labels, weights
        ``(n,)`` class (1 signal) and event weight; the weights are balanced per class
        (:func:`balanced_weights`) so that neither class dominates the fit.
    seed
        Seeds the tree's internal split for early stopping.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    # small trees and shrinkage; early stopping on a quarter of the examples once there are enough
    # (the validation split of a small study holds a few thousand), leaves that scale with them
    n = len(labels)
    classifier = HistGradientBoostingClassifier(
        max_iter=300 if n >= 2000 else 100, learning_rate=0.05, max_leaf_nodes=15,
        min_samples_leaf=max(2, min(20, n // 50)), l2_regularization=1.0, early_stopping=n >= 2000,
        validation_fraction=0.25, n_iter_no_change=20, random_state=seed % 2**32)
    x = np.c_[np.asarray(cnn, np.float64), np.asarray(variables, np.float64)]
    classifier.fit(x, labels.astype(int), sample_weight=balanced_weights(labels, weights))
    return TwoStage(names, classifier)


def load_two_stage(path: str | Path) -> TwoStage:
    """The tagger saved by :meth:`TwoStage.save`."""
    with open(path, "rb") as f:
        saved = pickle.load(f)  # noqa: S301 - a file jetimage wrote beside the model
    return TwoStage(saved["variables"], saved["classifier"])
