"""Taggers and the jet mass: how much a cut sculpts the background's mass (1/JSD), and the ways to
decorrelate (DDT, planing weights, the DisCo loss)."""
