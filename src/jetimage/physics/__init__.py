"""Physics on awkward arrays: jets (FastJet clustering, trimming, substructure, truth matching) and
whole events (fat jets, event variables, the cut-based selection of arXiv:1711.03573), and pileup
(a minimum-bias overlay, charged-hadron subtraction, SoftKiller)."""
