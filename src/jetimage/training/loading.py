"""Load a trained model: the custom layers and losses of the zoo and of DisCo are registered first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jetimage.formats.errors import InputError

__all__ = ["load_model", "register_custom_objects"]


def load_model(path: str | Path) -> Any:
    """A trained model, in Keras' safe mode.

    Raises
    ------
    InputError
        Naming the file when it is missing, truncated or not a Keras model.
    """
    import keras

    register_custom_objects()

    if not Path(path).is_file():
        raise InputError(f"{path}: no such model file; run the train rule first")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # Keras raises many types for a corrupt archive
        reason = " ".join(str(err).split())[:300]
        raise InputError(f"{path}: not a readable Keras model ({type(err).__name__}: {reason}); "
                         "delete it and rerun the train rule") from err


def register_custom_objects() -> None:
    """Import the modules whose Keras layers, losses and metrics a saved model may name: they
    register themselves on import, and safe-mode loading finds only registered objects."""
    # deferred: Keras (TensorFlow) takes seconds to import and only model building and loading need it
    from jetimage.decorrelation import disco  # noqa: F401
    from jetimage.models import zoo  # noqa: F401
