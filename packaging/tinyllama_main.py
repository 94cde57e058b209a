"""The bundle's entry point: the `tinyllama` command, frozen.

No arguments opens the desktop app; `tinyllama local` and `tinyllama worker` run the
backend (the local stack spawns the worker as `<bundle> worker`).
"""

from __future__ import annotations

import os
import sys

from desktop.cli import main

if __name__ == "__main__":
    if sys.platform == "darwin":
        # An app opened from Finder gets launchd's PATH (/usr/bin:/bin:...), which misses
        # Homebrew, where `brew install redis` puts redis-server.
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), "/opt/homebrew/bin", "/usr/local/bin"])
    sys.exit(main())
