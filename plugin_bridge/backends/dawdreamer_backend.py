"""The ``dawdreamer`` backend: the whole chain compiled to ONE Faust program, rendered by DawDreamer.

`faust_codegen.chain_program` writes the program with every parameter baked in as a constant;
`DawDreamerBackend.prepare` compiles it into a `DawDreamerProcessor`
(`plugin_bridge.backends.dawdreamer_engine`, where the DawDreamer traps are handled). A chain with
slots that name a plugin (VST2, VST3 or LV2 through a map) becomes Faust segments around plugin
nodes of one graph (`plugin_bridge.backends.hosted.DawDreamerGraphProcessor`). Not streaming: the
renderer hands it the whole signal as one block.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..effects import Effect
from .base import Backend
from .dawdreamer_engine import INSTALL_HINT, DawDreamerProcessor
from .faust_codegen import chain_program
from .hosted import dawdreamer_processor

log = logging.getLogger(__name__)


class DawDreamerBackend(Backend):
    """Render chains as one Faust program in DawDreamer (needs the ``dawdreamer`` extra)."""

    name = "dawdreamer"
    streaming = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when ``import dawdreamer`` works, else what to install."""
        try:
            import dawdreamer  # noqa: F401
        except (ImportError, OSError) as e:  # OSError: a shared library of the wheel is missing
            return f"dawdreamer is not installed ({e}); install it with {INSTALL_HINT}"
        return None

    def prepare(
        self,
        effects: Sequence[Effect],
        sample_rate: float,
        channels: int,
        states: Mapping[str, dict] | None = None,
    ) -> DawDreamerProcessor:
        """Compile ``effects`` at ``sample_rate`` Hz for ``channels`` (1 or 2) inputs into one processor.

        Compiles in the calling thread (typically 0.1-1 s); raises `BackendError` if it fails.
        Hosted-plugin slots get their ``states`` restored.
        """
        if any(e.plugin for e in effects):
            hosted = dawdreamer_processor(effects, sample_rate, channels, states=states)
            if hosted is not None:
                return hosted  # type: ignore[return-value]
            effects = [replace(e, plugin=None) for e in effects]
        program = chain_program(effects, sample_rate, channels)
        log.debug("dawdreamer: Faust program for %d effects:\n%s", len(effects), program.code)
        return DawDreamerProcessor(program, sample_rate)
