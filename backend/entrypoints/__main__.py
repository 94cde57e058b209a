"""`python -m backend.entrypoints COMMAND`: the backend's processes without the desktop app.

The local stack starts its service and its workers this way when it runs from source; the
GPU instance runs the worker through the `tinyllama-worker` entry point of its own package.
"""

import sys

from backend.entrypoints.commands import main

sys.exit(main())
