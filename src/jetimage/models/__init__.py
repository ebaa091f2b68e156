"""The Keras model zoo: every architecture a study can train (``train.model``)."""
