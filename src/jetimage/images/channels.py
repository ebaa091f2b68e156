"""Image channels: the one vocabulary of jet images and whole-event images.

Each particle (or constituent) gets bit :func:`flags` from its charge and PDG id; a channel
sums, per pixel, one quantity of the particles whose flags select it:

``total``
    the intensity (pT or E) of every particle;
``charged`` / ``neutral``
    the intensity of the charged / neutral particles;
``charged_count``
    1 per charged particle (a track count);
``em``
    the intensity of electrons and photons (|PDG id| 11, 22: the electromagnetic calorimeter);
``had``
    the intensity of hadrons (|PDG id| > 100, K_L and neutrons included: the hadronic
    calorimeter);
``charged_lv`` / ``charged_pu``
    the intensity of the charged particles from the leading vertex / from pileup vertices (the
    tracks, whose vertex the tracker knows);
``neutral_lv``
    the intensity of the neutral particles from the leading vertex: what pileup mitigation
    tries to recover from ``neutral``, which a calorimeter sees from every vertex.

A particle's vertex comes from its ``origin`` field (0: the leading vertex, 1: pileup; absent:
the leading vertex). Tracks are known within the tracker (|eta| < :data:`TRACKER_ETA`): a pileup
study keeps its constituents inside it, so ``charged_lv + charged_pu + neutral = total``.

Muons and neutrinos are in neither ``em`` nor ``had``. The numpy reference paths use
:func:`channel_weights`; the compiled kernel of :mod:`jetimage._kernels` takes the
:func:`codes` of the channels and the flags, and computes the same weights itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jetimage.config.validation import TRACKER_ETA

__all__ = [
    "CHANNELS", "CHARGED", "CODES", "EM", "HADRON", "PILEUP", "TRACKER_ETA", "channel_weights", "codes",
    "flags", "record_flags",
]

#: Channel names, in the order of their codes.
CHANNELS: tuple[str, ...] = ("total", "charged", "neutral", "charged_count", "em", "had", "charged_lv",
                             "charged_pu", "neutral_lv")
#: Integer code of each channel (as passed to the compiled kernel).
CODES: dict[str, int] = {name: code for code, name in enumerate(CHANNELS)}

#: Particle flag bits.
CHARGED = 1
EM = 2
HADRON = 4
PILEUP = 8


def _check(channels: Sequence[str]) -> None:
    unknown = [c for c in channels if c not in CODES]
    if unknown:
        raise ValueError(f"unknown image channels {unknown}; choose from {CHANNELS}")


def flags(charge: np.ndarray, pdgid: np.ndarray | None, origin: np.ndarray | None = None) -> np.ndarray:
    """Flag bits of each particle: ``(n,)`` int32.

    Parameters
    ----------
    charge
        ``(n,)`` electric charge (units of e): :data:`CHARGED` where non-zero.
    pdgid
        ``(n,)`` PDG particle ids: :data:`EM` for |id| 11 and 22, :data:`HADRON` for
        |id| > 100. ``None`` (no ids known): neither bit, so ``em`` and ``had`` stay empty.
    origin
        ``(n,)`` vertex of each particle: :data:`PILEUP` where non-zero (a pileup vertex);
        ``None``: every particle from the leading vertex.

    Returns
    -------
    np.ndarray
        ``(n,)`` int32, an OR of :data:`CHARGED`, :data:`EM`, :data:`HADRON`, :data:`PILEUP`.
    """
    out = (np.asarray(charge) != 0).astype(np.int32) * np.int32(CHARGED)
    if pdgid is not None:
        apid = np.abs(np.asarray(pdgid))
        out |= ((apid == 11) | (apid == 22)).astype(np.int32) * np.int32(EM)
        out |= (apid > 100).astype(np.int32) * np.int32(HADRON)
    if origin is not None:
        out |= (np.asarray(origin) != 0).astype(np.int32) * np.int32(PILEUP)
    return out


def record_flags(records: Any) -> np.ndarray:
    """:func:`flags` of ``(n,)`` flat particle records (an awkward array of records) from their
    ``charge``, ``pdgid`` and ``origin`` fields; each may be absent (zero charge / no ids / the
    leading vertex): ``(n,)`` int32.
    """
    fields = records.fields
    charge = np.asarray(records["charge"]) if "charge" in fields else np.zeros(len(records), np.int32)
    pdgid = np.asarray(records["pdgid"]) if "pdgid" in fields else None
    origin = np.asarray(records["origin"]) if "origin" in fields else None
    return flags(charge, pdgid, origin)


def channel_weights(
    intensity: np.ndarray, flags: np.ndarray, channels: Sequence[str]
) -> np.ndarray:
    """Per-particle contributions to each channel.

    Parameters
    ----------
    intensity
        ``(n,)`` float pT or E (GeV).
    flags
        ``(n,)`` flag bits from :func:`flags`.
    channels
        Channel names from :data:`CHANNELS`.

    Returns
    -------
    np.ndarray
        ``(n, n_channels)`` in the float dtype of ``intensity``.

    Raises
    ------
    ValueError
        For a channel not in :data:`CHANNELS`.
    """
    _check(channels)
    intensity = np.asarray(intensity)
    dt = intensity.dtype if np.issubdtype(intensity.dtype, np.floating) else np.dtype(np.float64)
    intensity = intensity.astype(dt, copy=False)
    zero = dt.type(0.0)
    charged = (flags & CHARGED) != 0
    pileup = (flags & PILEUP) != 0
    table = {
        "total": lambda: intensity,
        "charged": lambda: np.where(charged, intensity, zero),
        "neutral": lambda: np.where(charged, zero, intensity),
        "charged_count": lambda: charged.astype(dt),
        "em": lambda: np.where((flags & EM) != 0, intensity, zero),
        "had": lambda: np.where((flags & HADRON) != 0, intensity, zero),
        "charged_lv": lambda: np.where(charged & ~pileup, intensity, zero),
        "charged_pu": lambda: np.where(charged & pileup, intensity, zero),
        "neutral_lv": lambda: np.where(~charged & ~pileup, intensity, zero),
    }
    out = np.empty((len(intensity), len(channels)), dtype=dt)
    for k, name in enumerate(channels):
        out[:, k] = table[name]()
    return out


def codes(channels: Sequence[str]) -> np.ndarray:
    """``(n_channels,)`` int64 :data:`CODES` of the channel names (ValueError if unknown)."""
    _check(channels)
    return np.array([CODES[c] for c in channels], dtype=np.int64)
