"""Sessions rendered as a graph: tracks -> buses (sends) -> master, latency-compensated.

- `signal_flow`: the pan law, stem sources, latency and tail planning every executor shares.
- `executor`: the streaming Python executor (any backend; hosted plugins per node).
- `dawdreamer_graph`: the whole session as ONE native DawDreamer graph (the dawdreamer backend).
"""

from __future__ import annotations

from .executor import SessionGraph, SessionResult, render_session, render_session_array
from .signal_flow import pan_to_stereo, session_sample_rate, track_pan_gains

__all__ = [
    "SessionGraph",
    "SessionResult",
    "pan_to_stereo",
    "render_session",
    "render_session_array",
    "session_sample_rate",
    "track_pan_gains",
]
