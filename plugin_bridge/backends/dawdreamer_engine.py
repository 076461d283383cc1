"""DawDreamer engines for the ``dawdreamer`` backend: one Faust program (or a graph with hosted
plugins, `plugin_bridge.backends.hosted`) rendered as a whole signal.

`faust_codegen.chain_program` writes the program with every parameter baked in as a constant;
`DawDreamerBackend.prepare` compiles it (in the calling thread) into a DawDreamer ``RenderEngine``
whose graph is ``playback -> faust``; `DawDreamerProcessor.process` renders a whole signal.

DawDreamer renders a complete buffer and resets every processor at each render, so this backend
is not streaming (``streaming = False``): the renderer hands it the whole signal as one block.
Memory: while it renders, the whole signal is held four times: the caller's block, DawDreamer's
playback copy, the engine's recorded output and the returned array, i.e. about 16 * c * n bytes
for n samples of c channels (measured: a 5-minute stereo 44.1 kHz block of 106 MB raised peak
memory by 310 MB). Ten minutes of stereo at 44.1 kHz peak at ~850 MB. DawDreamer's two copies
are released after each render. Long files at high sample rates are better rendered with the
streaming backends (pedalboard, numpy).

DawDreamer/Faust traps handled here (see /work/shared/HOSTING.md):

- every processor is created before ``load_graph`` (a Faust processor made later fails to compile);
  engine creation and compilation happen in the thread that calls ``prepare``, which must always be
  the same thread: DawDreamer binds to the first thread that builds an engine, and an engine built
  in any other thread later hangs forever at render, so a second thread gets a `BackendError`
  instead (`claim_build_thread`). ``process`` may run in any thread; renders of one processor are
  serialised with a lock;
- plugins (DPF) can leave flush-to-zero/denormals-are-zero set, and a later Faust compile can then
  abort the process: the FPU environment is reset before compiling;
- ``render(n / sample_rate)`` truncates and sometimes yields n - 1 samples: we render
  ``(n + 0.5) / sample_rate`` seconds and check the length;
- Faust's ``-double`` flag corrupts recursive signals inside DawDreamer 0.9.0: the program runs in
  float32 and is written for it (see `faust_codegen`).

A chain with slots that name a plugin (``Effect.plugin``: VST2, VST3 or LV2 through a map) is split
into Faust segments around plugin nodes in one graph (`plugin_bridge.backends.hosted`).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from ..errors import AudioError, BackendError
from ..plugins.fpu import reset_fpu_environment
from .faust_codegen import FaustProgram

log = logging.getLogger(__name__)

#: Frames DawDreamer processes per internal block.
BLOCK_SIZE = 512
INSTALL_HINT = "pip install 'plugin-bridge[dawdreamer]'"
#: The thread that built the first engine (JUCE's message thread); see `claim_build_thread`.
_build_thread: threading.Thread | None = None
_build_lock = threading.Lock()
#: Faust compile flags: flush denormals in recursive state (mask based). Without it a reverb or
#: filter tail decaying into silence renders ~1.5x slower. Never add ``-double`` (see above).
FAUST_FLAGS = ("-ftz", "2")


def claim_build_thread() -> None:
    """Make sure engines are only ever built in one thread; raise `BackendError` otherwise.

    DawDreamer 0.9.0 binds to the first thread that builds an engine (JUCE's message thread):
    building an engine later from any other thread (even after the first has finished) hangs
    forever at its first render. Rendering (`DawDreamerProcessor.process`) works from any thread.
    """
    global _build_thread
    current = threading.current_thread()
    with _build_lock:
        if _build_thread is None or not _build_thread.is_alive():
            if _build_thread is not None:  # its thread is gone: no other thread can build safely
                raise BackendError(
                    f"dawdreamer: the thread that built the first chain ({_build_thread.name!r}) has "
                    "ended; DawDreamer can only build chains in that thread"
                )
            _build_thread = current
        elif _build_thread is not current:
            raise BackendError(
                f"dawdreamer: chains must be prepared in the thread that prepared the first one "
                f"({_build_thread.name!r}), not in {current.name!r}: DawDreamer 0.9.0 hangs when engines "
                "are built from a second thread. Rendering (process) works from any thread."
            )


class WholeSignalRenderer:
    """What every DawDreamer processor here shares: render a whole signal through a built engine.

    Subclasses build ``_engine`` (with a playback processor ``_playback`` first in its graph) and set
    ``in_channels``, ``out_channels``, ``sample_rate`` and ``_lock``; `_before_render` is a hook run
    under the lock before each render (hosted LV2 plugins re-apply their parameters there).
    """

    in_channels: int
    out_channels: int
    sample_rate: float

    def _before_render(self) -> None:
        """Called under the lock before each render; nothing by default."""

    def _release_buffers(self) -> None:
        """Drop DawDreamer's copies of the last signal (playback data, recorded output).

        Both would otherwise stay allocated, at the size of the whole signal, for the life of the
        processor; a one-sample render of one silent sample replaces them.
        """
        self._playback.set_data(np.zeros((self.in_channels, 1), dtype=np.float32))
        self._engine.render(0.5 / self.sample_rate)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Render the whole ``(channels, n)`` float32 signal; returns ``(out_channels, n)`` float32.

        The output is not trimmed: it still starts with ``latency`` samples of look-ahead delay.
        """
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[0] != self.in_channels:
            raise AudioError(
                f"dawdreamer: expected a ({self.in_channels}, samples) block, got shape {block.shape}"
            )
        n = block.shape[1]
        if n == 0:
            return np.zeros((self.out_channels, 0), dtype=np.float32)
        data = np.ascontiguousarray(block, dtype=np.float32)
        with self._lock:
            self._before_render()
            self._playback.set_data(data)
            try:
                if not self._engine.render((n + 0.5) / self.sample_rate):
                    raise BackendError("dawdreamer: render failed")
                out = self._engine.get_audio()
            finally:
                self._release_buffers()
        if out.shape[0] != self.out_channels or out.shape[1] < n:
            raise BackendError(f"dawdreamer: rendered shape {out.shape}, expected ({self.out_channels}, {n})")
        return np.ascontiguousarray(out[:, :n], dtype=np.float32)


class DawDreamerProcessor(WholeSignalRenderer):
    """A compiled chain: ``process`` renders a whole ``(channels, n)`` signal in one call.

    ``latency`` is the delay (samples) the program adds (limiter look-ahead); the renderer trims it.
    Each call is independent: DawDreamer resets the Faust state at every render.
    """

    def __init__(self, program: FaustProgram, sample_rate: float, block_size: int = BLOCK_SIZE):
        self.program = program
        self.sample_rate = float(sample_rate)
        self.in_channels = program.in_channels
        self.out_channels = program.out_channels
        self.latency = program.latency
        self._lock = threading.Lock()
        claim_build_thread()
        self._build(int(block_size))

    def _build(self, block_size: int) -> None:
        """Create the engine and both processors, compile the program, then load the graph."""
        import dawdreamer

        program = self.program
        self._engine = dawdreamer.RenderEngine(self.sample_rate, block_size)
        # every processor exists before load_graph; the playback data is replaced at each render
        self._playback = self._engine.make_playback_processor(
            "input", np.zeros((self.in_channels, block_size), dtype=np.float32)
        )
        self._faust = self._engine.make_faust_processor("chain")
        reset_fpu_environment()
        try:
            self._faust.compile_flags = list(FAUST_FLAGS)
            self._faust.set_dsp_string(program.code)
            ok = self._faust.compile()
        except RuntimeError as e:
            raise BackendError(f"dawdreamer: the generated Faust program does not compile: {e}") from None
        if not ok:
            raise BackendError("dawdreamer: the generated Faust program does not compile")
        n_in, n_out = self._faust.get_num_input_channels(), self._faust.get_num_output_channels()
        if (n_in, n_out) != (self.in_channels, self.out_channels):
            raise BackendError(
                f"dawdreamer: compiled program has {n_in} -> {n_out} channels, expected "
                f"{self.in_channels} -> {self.out_channels}"
            )
        if not self._engine.load_graph([(self._playback, []), (self._faust, ["input"])]):
            raise BackendError("dawdreamer: could not load the render graph")
        self._release_buffers()  # first (one-sample) render, in the build thread
