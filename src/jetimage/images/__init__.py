"""From constituents to images: the channel vocabulary, pixelization, and the preprocessing
(centre, rotate, flip, normalize) in the mass-preserving ``lorentz`` and the ``image`` modes."""
