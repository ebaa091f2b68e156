"""Figures of merit on the test split: ROC curves and bootstrap errors, likelihood ratios, Fisher's
discriminant, the baselines each study kind is compared with, and streamed scoring."""
