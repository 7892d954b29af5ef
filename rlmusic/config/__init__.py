"""Typed task configs: every ``rlmusic <task>`` config is checked against a schema before any
work, and a resumed fine-tuning run is checked against the config it was started with."""

from rlmusic.config.validate import ConfigError, validate_config

__all__ = ["ConfigError", "validate_config"]
