"""The local web app (``plugin-bridge serve``): hear the AI's mix, compare it loudness-matched with
the original and a reference, adjust every parameter, accept and export; accepts teach the taste
profile (`plugin_bridge.ml.preference`).

Modules: `safety` (what may be read or written), `workspace` (sessions: proposal, settings, undo,
preview, full render, accept), `app` (the Starlette server and `serve`), ``static/`` (the page).
"""
