"""The `tinyllama` command, as the app installs it.

- `tinyllama`               open the desktop app
- `tinyllama local ...`     the whole stack on this computer (`--service`: in the background,
                            as the app runs it)
- `tinyllama worker`        the worker (configured by environment variables)
- `tinyllama cost-estimate` what a stack costs idle, line by line
- `tinyllama deploy`        deploy, update or delete the stack in an AWS account

The backend's subcommands come from backend/entrypoints/commands.py; this module adds what
only the app has (the window and the deployer), so the arrow points from desktop to backend.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Parse and run; no command opens the app."""
    if not (sys.argv[1:] if argv is None else argv):
        # The double-click: straight to the window, without building every subcommand's parser.
        from desktop.app import main as app_main

        return app_main([])
    from backend.entrypoints import commands

    parser, sub = commands.build_parser()
    from desktop import deploy_cli

    deploy_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        from desktop.app import main as app_main

        return app_main([])
    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
