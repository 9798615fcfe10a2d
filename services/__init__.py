"""Touchstream's runtime: settings, the embedded stack, the Faust worker, the API and the CLI."""

__version__ = "0.1.0"
