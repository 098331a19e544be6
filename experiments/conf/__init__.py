"""Hydra configs: the primary `config.yaml` and the `protocol` group (importable so Hydra can find them)."""
