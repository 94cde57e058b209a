"""The `tinyllama` command.

- `tinyllama`              open the desktop app
- `tinyllama local ...`    the whole stack on this computer (`--service`: in the background,
                           as the app runs it)
- `tinyllama worker`       the GPU worker (configured by environment variables)
- `tinyllama cost-estimate` what a stack costs idle, line by line
- `tinyllama deploy`       deploy, update or delete the stack in an AWS account
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _local(args: argparse.Namespace) -> int:
    from backend.entrypoints.local import LocalStack, serve_forever

    cognito = None
    if args.cognito_user_pool_id:
        if not (args.cognito_region and args.cognito_client_id):
            print("tinyllama local: --cognito-user-pool-id needs --cognito-region and --cognito-client-id")
            return 2
        cognito = (args.cognito_region, args.cognito_user_pool_id, args.cognito_client_id)
    kwargs = dict(
        port=args.port,
        engine=args.engine,
        token=args.token or os.environ.get("TINYLLAMA_LOCAL_TOKEN"),
        idle_timeout_s=args.idle_timeout,
        engine_url=args.engine_url,
        model=args.model,
        vllm_args=args.vllm_arg,
        cognito=cognito,
        hard_cap_usd=args.hard_cap_usd,
        spend_usd=args.spend_usd,
        claim_idle_s=args.claim_idle,
    )
    if args.service:
        from backend.entrypoints.local_service import run_service

        idle = args.service_idle_timeout if args.service_idle_timeout is not None else args.idle_timeout
        return run_service(kwargs, idle, version=_version())
    from backend.entrypoints.local_service import ServicePaths

    # Nothing else of a terminal run is kept, but its measured wakes are: the next run's
    # first ETA is then a real median, not a guess (the service keeps them in its Redis).
    wakes_file = str(ServicePaths.default().data_dir / "terminal-wakes.json")
    return serve_forever(LocalStack(**kwargs, wakes_file=wakes_file))  # type: ignore[arg-type]


def _watchdog(_args: argparse.Namespace) -> int:
    from backend.entrypoints.watchdog import main as watchdog_main

    return watchdog_main()


def _worker(_args: argparse.Namespace) -> int:
    from backend.entrypoints.worker import main_from_env

    return main_from_env()


def _version() -> str:
    """pyproject.toml's version, from the installed (or bundled) metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tinyllama")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyllama", description="Your own LLM on your own cloud account.")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command")

    local = sub.add_parser("local", help="run the router, queue and worker on this computer")
    local.add_argument("--port", type=int, default=8765, help="loopback port of the API (0: any free one)")
    local.add_argument("--engine", choices=["echo", "vllm", "openai"], default="echo")
    local.add_argument("--engine-url", help="OpenAI-compatible base URL for --engine openai")
    local.add_argument("--model", help="model for vLLM (path or name) or for the OpenAI-compatible server")
    local.add_argument("--vllm-arg", action="append", default=[], help="extra argument for `vllm serve`")
    local.add_argument("--token", help="bearer token clients must send (default: a new random one)")
    local.add_argument("--idle-timeout", type=float, default=900.0, help="seconds before the worker stops")
    local.add_argument("--cognito-region")
    local.add_argument("--cognito-user-pool-id")
    local.add_argument("--cognito-client-id")
    local.add_argument("--hard-cap-usd", type=float, help="refuse to wake past this month-to-date spend")
    local.add_argument("--spend-usd", type=float, help="simulated month-to-date spend (to try the guard)")
    local.add_argument("--claim-idle", type=float, default=30.0,
                       help="seconds before a job a dead worker held is handed to another")
    local.add_argument("--service", action="store_true",
                       help="run detached as the app's background service (found through a file in the "
                            "user's runtime folder; data kept in the user's data folder)")
    local.add_argument("--service-idle-timeout", type=float,
                       help="with --service: stop after this many seconds with nothing to do "
                            "(default: --idle-timeout)")
    local.set_defaults(func=_local)

    watchdog = sub.add_parser("watchdog", help=argparse.SUPPRESS)  # internal: see backend/entrypoints/watchdog.py
    watchdog.set_defaults(func=_watchdog)

    worker = sub.add_parser("worker", help="run the worker (configured by environment variables)")
    worker.set_defaults(func=_worker)

    try:
        from backend.entrypoints import cost_cli
    except ImportError:  # pragma: no cover - written alongside the infrastructure
        cost_cli = None  # type: ignore[assignment]
    if cost_cli is not None:
        cost_cli.add_parser(sub)
    from backend.entrypoints import deploy_cli

    deploy_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is None:
        from desktop.app import main as app_main

        return app_main([])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
