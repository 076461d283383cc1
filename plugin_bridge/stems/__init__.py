"""Stems in, a mixed session out: the AI's multitrack mix (``plugin-bridge mix STEMS_DIR``)."""
