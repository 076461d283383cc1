"""The floating-point environment that plugins leave behind (HOSTING.md trap 6).

DPF plugins (zam, MVerb, ...) leave flush-to-zero / denormals-are-zero set on the calling thread; a
later Faust compile of some libraries (zita reverb) then aborts the process. `reset_fpu_environment`
restores glibc's default environment after any plugin call.
"""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def _libm() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libm.so.6")
    except OSError:  # not glibc
        return None


def reset_fpu_environment() -> None:
    """Restore the default floating-point environment of the calling thread (glibc ``FE_DFL_ENV``).

    Undoes flush-to-zero / denormals-are-zero left behind by some plugins, which make DawDreamer's
    Faust (LLVM) compiler abort. A no-op where libm's ``fesetenv`` is not available.
    """
    libm = _libm() if sys.platform.startswith("linux") else None
    if libm is not None:
        libm.fesetenv(ctypes.c_void_p(-1))  # FE_DFL_ENV == (const fenv_t *) -1 in glibc
