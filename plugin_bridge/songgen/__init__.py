"""Procedural songs: composition to MIDI, one stem per part rendered with fluidsynth or a numpy synth.

- `compose`: seeded arrangements written with mido (drums, bass, keys, lead, optional arp).
- `parts`: splitting a MIDI file per part and reading its notes in seconds.
- `voices`: the built-in numpy synth (GM drum kit and one voice per GM program family).
- `fluid`: the fluidsynth command line, dry (reverb and chorus off), in a subprocess.

The public entry points are in `plugin_bridge.songgen.multitrack`.
"""

from .compose import PART_ROLES, compose_song
from .parts import NoteEvent, note_events, split_parts

__all__ = ["PART_ROLES", "NoteEvent", "compose_song", "note_events", "split_parts"]
