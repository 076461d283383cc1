"""Render backends behind one interface (`Backend`): pedalboard, numpy, dawdreamer.

Backends are looked up by name; optional libraries are imported only when a backend is used.
"""

from __future__ import annotations

import importlib

from ..errors import BackendError
from .base import Backend, Processor

_MODULES = {
    "pedalboard": ("pedalboard_backend", "PedalboardBackend"),
    "numpy": ("numpy_backend", "NumpyBackend"),
    "dawdreamer": ("dawdreamer_backend", "DawDreamerBackend"),
}
BACKEND_NAMES: tuple[str, ...] = tuple(_MODULES)


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name``; an unknown name lists the valid ones."""
    try:
        module, cls = _MODULES[name]
    except KeyError:
        raise BackendError(
            f"unknown backend {name!r}; valid: {', '.join(BACKEND_NAMES)} (or 'auto')"
        ) from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def get_backend(name: str = "auto") -> Backend:
    """An instance of backend ``name``; ``"auto"`` picks pedalboard, or numpy when it is missing.

    Raises `BackendError` when the named backend cannot run here, saying what to install.
    """
    if name == "auto":
        name = "pedalboard" if backend_class("pedalboard").unavailable_reason() is None else "numpy"
    cls = backend_class(name)
    reason = cls.unavailable_reason()
    if reason:
        raise BackendError(f"backend {name!r} is not available: {reason}")
    return cls()


def available_backends() -> dict[str, str | None]:
    """``{name: None if usable else the reason it is not}`` for every backend."""
    return {name: backend_class(name).unavailable_reason() for name in BACKEND_NAMES}


__all__ = ["BACKEND_NAMES", "Backend", "Processor", "available_backends", "backend_class", "get_backend"]
