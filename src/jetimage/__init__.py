"""jetimage: calorimeter jet images from collider events, and CNNs trained on them.

One module per stage: :mod:`~jetimage.config`, :mod:`~jetimage.generate`, :mod:`~jetimage.jets`,
:mod:`~jetimage.io`, :mod:`~jetimage.preprocess`, :mod:`~jetimage.pixelize`,
:mod:`~jetimage.images`, :mod:`~jetimage.models`, :mod:`~jetimage.train`,
:mod:`~jetimage.evaluate`, :mod:`~jetimage.plots`, :mod:`~jetimage.cli`.
"""

__version__ = "0.1.0"
