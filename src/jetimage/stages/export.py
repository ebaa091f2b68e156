"""The export stage: the trained Keras model as ONNX (``model.onnx``), with the in-model transforms
replaced by ONNX-exportable equivalents, and its scores through ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from jetimage.formats.atomic import atomic_path
from jetimage.formats.errors import InputError
from jetimage.training.definition import model_variables, read_definition
from jetimage.training.loading import load_model

log = logging.getLogger(__name__)

__all__ = ["export_onnx", "exportable", "onnx_scores"]


def _export_layers() -> tuple[type, type]:
    """Layers that ONNX converters know, standing in for ``Log1p`` and ``Normalization``."""
    import keras

    class ExportLog1p(keras.layers.Layer):
        """``log(1 + max(x, 0))``: ONNX has no log1p operator."""

        def call(self, inputs: Any) -> Any:
            return keras.ops.log(1.0 + keras.ops.maximum(inputs, 0.0))

    class ExportStandardize(keras.layers.Layer):
        """``(x - mean) / max(sqrt(variance), eps)`` with the statistics as weights (the adapted
        ``Normalization`` keeps them as captured tensors, which converters turn into graph inputs)."""

        def __init__(self, mean: np.ndarray, variance: np.ndarray, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            const = keras.initializers.Constant
            self.mean = self.add_weight(shape=mean.shape, initializer=const(mean), trainable=False,
                                        name="mean")
            self.variance = self.add_weight(shape=variance.shape, initializer=const(variance),
                                            trainable=False, name="variance")

        def call(self, inputs: Any) -> Any:
            scale = keras.ops.maximum(keras.ops.sqrt(self.variance), keras.config.epsilon())
            return (inputs - self.mean) / scale

    return ExportLog1p, ExportStandardize


def exportable(model: Any) -> Any:
    """A copy of ``model`` with the same weights in layers that ONNX converters support."""
    import keras  # deferred, as every Keras import here: TensorFlow takes seconds to load

    from jetimage.models.zoo import Log1p  # the zoo builds on Keras at import

    log1p, standardize = _export_layers()

    def clone(layer: Any) -> Any:
        if isinstance(layer, Log1p):
            return log1p(name=layer.name)
        if isinstance(layer, keras.layers.Normalization):
            return standardize(np.asarray(layer.mean), np.asarray(layer.variance), name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    for new, old in zip(copy.layers, model.layers, strict=True):
        if not isinstance(old, keras.layers.Normalization):
            new.set_weights(old.get_weights())
    return copy


def export_onnx(model_path: str | Path, output: str | Path) -> None:
    """Write the model as ONNX (``keras.Model.export(format="onnx")``, tf2onnx), atomically.

    The input is ``images`` ``(batch, n_eta, n_phi, n_channels)`` float32 and, for a model with
    physics variables, ``variables`` ``(batch, n_variables)`` float32 in the order of the
    definition's ``variables``; the output the ``(batch, 1)`` signal probability. The input
    definition (:func:`input_definition`) is stored as the ONNX metadata property
    ``jetimage_inputs`` (JSON).
    """
    import onnx  # deferred: only the export needs it

    definition = read_definition(model_path)
    copy = exportable(load_model(model_path))
    images = np.zeros((1, *definition["input_shape"]), np.float32)
    names = model_variables(definition)
    dummy = images if not names else {"images": images, "variables": np.zeros((1, len(names)), np.float32)}
    copy.predict(dummy, verbose=0)  # builds the graph
    with atomic_path(output) as tmp:
        copy.export(str(tmp), format="onnx", verbose=False)
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "jetimage_inputs", json.dumps(definition, sort_keys=True)
        onnx.save(proto, str(tmp))
    log.info("exported %s to %s", model_path, output)


def onnx_scores(onnx_path: str | Path, images: np.ndarray, variables: np.ndarray | None = None) -> np.ndarray:
    """``(n,)`` scores of ``(n, n_eta, n_phi, n_channels)`` images (and their ``(n, n_variables)``
    physics variables, for a model that takes them) with ONNX Runtime (CPU).

    Raises
    ------
    InputError
        Naming the file when the model's inputs and the given arrays do not agree.
    """
    import onnxruntime as ort  # deferred: only scoring an exported model needs it

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    given = {"images": images} if variables is None else {"images": images, "variables": variables}
    if len(names) != len(given) or (len(names) == 2 and set(names) != set(given)):
        raise InputError(f"{onnx_path}: the model takes the inputs {names}, given {sorted(given)}")
    feed = ({names[0]: images} if len(names) == 1 else given)
    feed = {k: np.asarray(v, np.float32) for k, v in feed.items()}
    return session.run(None, feed)[0].ravel().astype(np.float64)
