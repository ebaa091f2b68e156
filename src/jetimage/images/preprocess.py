"""Jet-image preprocessing: centring, rotation, parity flip and normalization, in two modes.

Constituents are ``(n_jets, var)`` awkward records with ``pt, eta, phi, e, charge, pdgid``
(GeV, radians; ``charge`` and ``pdgid`` select the channels of :mod:`jetimage.channels`);
jets are ``(n_jets,)`` records with the jet-level branches of :data:`jetimage.io.JET_BRANCHES`.
Images are ``(n_jets, n_eta, n_phi, n_channels)`` float32, axis 1 is eta (horizontal in
plots), axis 2 is phi (vertical).

Modes
-----
``lorentz`` (mass-preserving)
    Every step is applied to the constituent four-momenta ``(px, py, pz, E)`` *before*
    pixelization, as a Lorentz transformation:

    * translation in eta: a boost along z with velocity ``beta = tanh(eta0)``,
      ``pz' = pz cosh(eta0) - E sinh(eta0)``, ``E' = E cosh(eta0) - pz sinh(eta0)``. It shifts
      every rapidity by exactly ``-eta0`` and sends the (light-like) centre direction to
      ``eta = 0``; the pseudorapidity of a massive constituent shifts by slightly less.
      pT is invariant, E is not.
    * translation in phi: a rotation about z by ``-phi0``; pT, E and eta are invariant.
      After both, the centre direction is the +x axis and sits at the image centre.
    * rotation: a rotation of the 3-momenta about the centre direction (the x axis) by
      ``delta`` in the ``(pz, py)`` plane, which near the centre is the image plane
      ``(eta, phi)``. E is invariant; pT changes at second order in the distance to the centre.
    * flip: the reflection ``pz -> -pz`` (eta -> -eta), an improper but mass-preserving
      transformation; applied twice it is the identity.

    * boost normalization (``normalize: boost``): after the translation the centre direction is
      the +x axis; every constituent of a jet is boosted along it with the rapidity ``y`` that
      gives the jet the reference energy ``E_ref`` (``boost_energy``, GeV):
      ``E' = E cosh(y) - px sinh(y)``, ``px' = px cosh(y) - E sinh(y)``, py and pz unchanged.
      With ``T = sqrt(E_J^2 - px_J^2)`` and ``Y = atanh(px_J / E_J)`` of the jet,
      ``E'_J = T cosh(Y - y)``, so ``y = Y - acosh(E_ref / T)`` (jets with ``T > E_ref`` cannot
      reach it and stop at rest along x: ``y = Y``, ``E'_J = T``). Aberration: a massless
      constituent at angle theta from the axis goes to ``tan(theta'/2) = e^y tan(theta/2)``, with
      ``E' = E (cosh y - sinh y cos theta)``; near the axis ``theta' ~= theta E_J / E_ref``: the image
      is stretched (or shrunk) by the jet's energy over the reference. Invariant: every invariant
      mass (constituents, subjet pairs, the jet), the momentum components transverse to the axis
      (so the rotation angle about it), the light-cone fractions ``(E_i + px_i) / (E_J + px_J)``;
      the energy fractions ``E_i / E_J`` only near the axis. The boost commutes with the rotation
      about x and with the flip, so it is applied right after the translation.

    All of them keep every constituent mass and the jet invariant mass exactly (to rounding,
    below 1e-9 relative in float64). Pixelization comes last, by default with the ``moment``
    kernel of :mod:`jetimage.pixelize`, whose image mass does not depend on where in a pixel a
    constituent falls; so the image mass is also kept. Normalization ``l1`` or ``l2`` divides the
    image by a per-jet scale (stored), which scales the image mass by the same factor; ``boost``
    gives every jet the energy ``E_ref`` (the total of an E image; of a pT image up to
    ``cosh(eta)`` of its pixels) and keeps its mass (the rapidity is stored as ``boost_rapidity``).

``image`` (the published way, kept as the control; arXiv:1407.5675, arXiv:1511.05190)
    The constituents are pixelized on the fixed detector grid (cells of the pixel size with
    edges at multiples of it, nearest-grid-point); translation moves the cell that contains
    the centre to the central pixel (a shift by whole pixels, pixel values unchanged, so an E
    image keeps the detector-frame energies); rotation turns the pixel array about its centre
    with cubic-spline interpolation; flip mirrors the pixel columns. Interpolation smears the
    intensity and moves it off the constituent directions, and a translated E image is no longer
    the image of any set of massless particles of that energy: both change the image mass.

Constituents enter as massless deposits by default (option ``massless``, true): E is replaced
by ``pT cosh(eta)``, as a calorimeter cell sees a particle, so a boost along z shifts every
constituent's pseudorapidity (= rapidity) by exactly ``-eta0`` and the image mass after the
translation equals that of the pixelized jet up to the pixel quantization. With
``massless: false`` the stored (massive) hadron four-vectors are used; their pseudorapidity
shifts by less than ``eta0`` under the boost (see ``docs/preprocessing.md``).

Centre, rotation and flip conventions (both modes): ``centre`` is ``leading_subjet`` (jet axis
if there is none), ``centroid`` (pT-weighted) or ``jet_axis``; ``rotate: subjet`` puts the
second subjet straight below the centre (angle -pi/2 in the (eta, phi) plane), falling back to
``principal`` for jets without one; ``rotate: principal`` turns the major principal axis of the
intensity distribution (central second moments) to the vertical (phi) axis; ``flip: parity``
reflects eta so that the half eta > 0 holds at least the intensity of the half eta < 0.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from jetimage.images.constituents import output_array
from jetimage.images.detector import image_mode_images
from jetimage.images.lorentz import lorentz_images, lorentz_images_numpy
from jetimage.images.normalize import normalize
from jetimage.images.pixelize import Grid

__all__ = ["MODES", "make_images"]


#: Preprocessing modes.
MODES = ("lorentz", "image")


def make_images(
    jets: ak.Array, options: dict[str, Any], backend: str = "numba", out: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Preprocess and pixelize jets according to the ``images`` section of the configuration.

    Parameters
    ----------
    jets
        ``(n_jets,)`` jet records with ``constituents`` (see the module docstring).
    options
        ``n_eta, n_phi, pixel_eta, pixel_phi, intensity, channels, centre, rotate, flip,
        normalize, mode`` (``boost_energy`` in GeV with ``normalize: boost``); optionally
        ``deposit`` (``ngp`` | ``moment``; default ``moment``
        in ``lorentz`` mode and ``ngp`` in ``image`` mode) and ``massless`` (default true:
        every constituent enters as a massless deposit at its (eta, phi) with its pT, i.e.
        ``E = pT cosh(eta)``, as calorimeter cells see particles; false: the stored hadron
        four-vectors, massive).
    backend
        ``numba`` (default): ``lorentz`` mode runs the fused compiled kernel of
        :mod:`jetimage._kernels`; ``numpy``: the whole-array numpy reference in float64
        (same images to ~1e-5 of the peak pixel, ~5-10x slower). ``image`` mode is numpy either way.
    out
        Optional ``(>= n_jets, n_eta, n_phi, n_channels)`` C-contiguous float32 array that
        receives the images: the returned ``images`` is ``out[:n_jets]``. A loop over chunks
        that reuses one buffer saves allocating and page-faulting fresh memory for each.

    Returns
    -------
    images : np.ndarray
        ``(n_jets, n_eta, n_phi, n_channels)`` float32.
    extras : dict
        Per-jet ``(n_jets,)`` arrays to store beside the images: ``centre_eta``,
        ``centre_phi`` (the centre, or in ``image`` mode the central pixel's detector position),
        ``rotation`` (radians, if rotating), ``flipped`` (0/1, if flipping),
        ``norm_scale_<channel>`` (``l1``, ``l2``) and ``boost_rapidity`` (``boost``).
    """
    grid = Grid.from_config(options)
    mode = options.get("mode", "lorentz")
    how = options.get("normalize", "none")
    if backend not in ("numba", "numpy"):
        raise ValueError(f"unknown backend {backend!r}; choose numba or numpy")
    kernel = mode == "lorentz" and backend == "numba"  # writes into ``out`` itself
    if kernel:
        images, extras, scale = lorentz_images(jets, options, grid, out)
    elif mode == "lorentz":
        images, extras, scale = lorentz_images_numpy(jets, options, grid)
    elif mode == "image":
        if how == "boost":
            raise ValueError("images.normalize: boost is a Lorentz transformation of the "
                             "constituents; it needs images.mode: lorentz")
        images, extras = image_mode_images(jets, options, grid)
        images, scale = normalize(images, how)
    else:
        raise ValueError(f"images.mode: unknown mode {mode!r}; choose from {MODES}")
    if out is not None and not kernel:
        target = output_array(out, images.shape)
        target[...] = images
        images = target
    if how in ("l1", "l2"):
        for k, name in enumerate(options["channels"]):
            extras[f"norm_scale_{name}"] = scale[:, k]
    return images, extras
