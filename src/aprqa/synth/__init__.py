"""Synthetic models: deterministic tiny HF dirs (presets of every family) and the embedded demo.

The package is import-light: the playbook schema reads the preset names without the writers."""
