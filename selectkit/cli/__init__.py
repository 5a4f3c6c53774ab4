"""Command-line interface; see ``selectkit --help``."""

from selectkit.cli.app import app, entrypoint

__all__ = ["app", "entrypoint"]
