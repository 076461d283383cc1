"""One error family for everything plugin-bridge rejects.

Every message names the file, effect, parameter or backend concerned so that a one-line CLI
error is enough to fix the problem.
"""

from __future__ import annotations


class PluginBridgeError(Exception):
    """Base class of every error plugin-bridge raises on purpose."""


class AudioError(PluginBridgeError):
    """Unreadable, corrupt, empty or non-finite audio, or an unwritable output."""


class ParameterError(PluginBridgeError, ValueError):
    """A parameter value, vector or name that is invalid."""


class ChainError(PluginBridgeError):
    """A chain file or chain definition that is invalid (unknown effect, bad slot...)."""


class BackendError(PluginBridgeError):
    """An unknown or unavailable render backend, or a failure inside one."""


class FormatError(PluginBridgeError):
    """A file in one of our formats (recipe, preset...) that cannot be read or written."""
