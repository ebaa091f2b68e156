"""The configuration: one JSON Schema (:file:`schema.yaml`), its validation and its reference page.

:mod:`~jetimage.config.validation` loads and validates a configuration file;
:mod:`~jetimage.config.reference` writes the configuration reference (``docs/configuration.md``)
from the schema; :mod:`~jetimage.config.snapshots` names each study's validated configuration by its
content, the file its jobs read.
"""

from .validation import (
    EXAMPLE_VARIABLES,
    PIXEL_MODELS,
    SCHEMA_PATH,
    Config,
    ConfigError,
    Kind,
    derive_seed,
    load,
    load_studies,
    slha_path,
    validate,
    validate_studies,
)

__all__ = ["Config", "ConfigError", "EXAMPLE_VARIABLES", "Kind", "PIXEL_MODELS", "SCHEMA_PATH", "derive_seed",
           "load", "load_studies", "slha_path", "validate", "validate_studies"]
