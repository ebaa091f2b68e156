"""DisCo (arXiv:2001.05310): the classification loss plus lambda times the squared distance
correlation of the network output with the jet mass, on the background of each batch.

Backend-agnostic Keras 3 (``keras.ops`` only). The targets of a DisCo training are
``(batch, 2)``: column 0 the label (1 = signal), column 1 the jet mass (GeV); the sample weights
are the usual per-jet training weights. :class:`LabelAUC` and :class:`LabelAccuracy` are the
training metrics on column 0. Everything here is registered for Keras serialization, so a saved
DisCo model loads (``safe_mode``) after ``import jetimage.models``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def distance_correlation_sq(x: Any, y: Any, weights: Any) -> Any:
    """Weighted squared distance correlation ``dCov^2(x, y) / sqrt(dVar^2(x) dVar^2(y))``.

    The V-statistic of Szekely et al. with per-point weights, as in the DisCo reference code: a
    point of integer weight k counts as k copies of it (``dcor.distance_correlation_sqr`` of the
    repeated sample); points of weight 0 do not count.

    Parameters
    ----------
    x, y
        ``(n,)`` tensors (the network output and the jet mass).
    weights
        ``(n,)`` non-negative weights (the background weights of the batch, 0 for signal).

    Returns
    -------
    tensor
        A scalar in [0, 1]; 0 when fewer than two weighted points differ (no background).
    """
    x, y, w = (ops.cast(ops.reshape(t, (-1,)), "float32") for t in (x, y, weights))
    n = ops.cast(ops.shape(x)[0], "float32")
    w = w * n / ops.maximum(ops.sum(w), 1e-12)  # mean 1 over the batch

    def centred(v: Any) -> Any:
        a = ops.abs(v[:, None] - v[None, :])
        row = ops.mean(a * w[None, :], axis=1)  # (1/n) sum_j w_j a_ij
        return a - row[:, None] - row[None, :] + ops.mean(row * w)

    a, b = centred(x), centred(y)

    def moment(u: Any, v: Any) -> Any:
        return ops.mean(ops.mean(u * v * w[None, :], axis=1) * w)

    return moment(a, b) / ops.sqrt(ops.maximum(moment(a, a) * moment(b, b), 1e-24))


@keras.saving.register_keras_serializable(package="jetimage")
class DisCoLoss(keras.losses.Loss):
    """Weighted binary cross-entropy plus ``lam`` times the squared distance correlation between
    the output and the jet mass of the background jets of the batch.

    ``y_true`` is ``(batch, 2)`` (label, mass in GeV); ``sample_weight`` ``(batch,)`` weights
    both terms (the correlation through the background weights). The cross-entropy term is
    Keras' ``sum_over_batch_size`` (sum of weighted losses over the batch size).
    """

    def __init__(self, lam: float = 1.0, name: str = "disco", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.lam = float(lam)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y_true = ops.cast(y_true, "float32")
        p = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
        label, mass = y_true[:, 0], y_true[:, 1]
        w = ops.ones_like(p) if sample_weight is None else \
            ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        bce = keras.losses.binary_crossentropy(label[:, None], p[:, None])
        n = ops.cast(ops.shape(p)[0], "float32")
        classification = ops.sum(w * ops.reshape(bce, (-1,))) / n
        return classification + self.lam * distance_correlation_sq(p, mass, w * (1.0 - label))

    def get_config(self) -> dict[str, Any]:
        return {"lam": self.lam, "name": self.name}


@keras.saving.register_keras_serializable(package="jetimage")
class LabelAUC(keras.metrics.AUC):
    """ROC AUC on column 0 (the label) of ``(batch, k)`` targets."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        return super().update_state(y_true[:, :1], y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="jetimage")
class LabelAccuracy(keras.metrics.BinaryAccuracy):
    """Binary accuracy on column 0 (the label) of ``(batch, k)`` targets."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        return super().update_state(y_true[:, :1], y_pred, sample_weight)


def objective(lam: float | None) -> tuple[Any, list[Any]]:
    """Loss and weighted metrics of a training: plain binary cross-entropy for ``lam`` None,
    else :class:`DisCoLoss` with the label-column metrics (named ``accuracy`` and ``auc`` as in
    every training's history)."""
    if lam is None:
        return "binary_crossentropy", ["accuracy", keras.metrics.AUC(name="auc")]
    return DisCoLoss(lam), [LabelAccuracy(name="accuracy"), LabelAUC(name="auc")]
