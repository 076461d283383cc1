"""The package version (one place: ``pyproject.toml`` holds the same string for packaging)."""

__version__ = "0.1.0"
