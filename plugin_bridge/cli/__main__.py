"""``python -m plugin_bridge.cli``: the same as the ``plugin-bridge`` command."""

import sys

from .main import main

sys.exit(main())
