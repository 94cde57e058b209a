"""The backend's subcommands, shared by `python -m backend.entrypoints` and the app's `tinyllama`.

- `local ...`      the whole stack on this computer (`--service`: in the background, as the
                   app runs it)
- `worker`         the GPU worker (configured by environment variables)
- `cost-estimate`  what a stack costs idle, line by line
- `watchdog`       internal: stops the local service's children if it dies
- `llamacpp-server` internal: the local stack's llama.cpp engine (a GGUF model), started on wake

The desktop app's `tinyllama` command (desktop/cli.py) adds `deploy` and opens the app when
no command is given; nothing here imports the desktop package.
"""

from __future__ import annotations

import argparse
import logging
import os


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
        return run_service(kwargs, idle, version=version())
    from backend.entrypoints.local_service import ServicePaths

    # Nothing else of a terminal run is kept, but its measured wakes are: the next run's
    # first ETA is then a real median, not a guess (the service keeps them in its Redis).
    wakes_file = str(ServicePaths.default().data_dir / "terminal-wakes.json")
    return serve_forever(LocalStack(**kwargs, wakes_file=wakes_file))  # type: ignore[arg-type]


def _watchdog(_args: argparse.Namespace) -> int:
    from backend.entrypoints.watchdog import main as watchdog_main

    return watchdog_main()


def _llamacpp_server(args: argparse.Namespace) -> int:
    from backend.adapters.llamacpp import serve

    return serve(args.model, args.port, context=args.context, parallel=args.parallel, threads=args.threads,
                 chat_template_file=args.chat_template_file)


def _worker(_args: argparse.Namespace) -> int:
    from backend.entrypoints.worker import main_from_env

    return main_from_env()


def version() -> str:
    """pyproject.toml's version, from the installed (or bundled) metadata: the app's package,
    or the GPU instance's worker-only one."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    for distribution in ("tinyllama", "tinyllama-worker"):
        try:
            return installed(distribution)
        except PackageNotFoundError:
            continue
    return "unknown (not installed)"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the backend's subcommands to a parser's subparsers."""
    local = sub.add_parser("local", help="run the router, queue and worker on this computer")
    local.add_argument("--port", type=int, default=8765, help="loopback port of the API (0: any free one)")
    local.add_argument("--engine", choices=["echo", "llamacpp", "vllm", "openai"], default="echo",
                       help="llamacpp: a GGUF model (--model PATH.gguf) on this computer's CPU")
    local.add_argument("--engine-url", help="OpenAI-compatible base URL for --engine openai")
    local.add_argument("--model", help="model: a .gguf file for llamacpp; a path or name for vLLM "
                                        "or the OpenAI-compatible server")
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

    # Internal: the local stack starts it (a frozen app has no `python -m`); the API key
    # comes from $ENGINE_API_KEY, never the command line.
    llamacpp = sub.add_parser("llamacpp-server", help=argparse.SUPPRESS)
    llamacpp.add_argument("--model", required=True, help="path to a .gguf file")
    llamacpp.add_argument("--port", type=int, required=True)
    llamacpp.add_argument("--context", type=int, required=True, help="tokens per slot")
    llamacpp.add_argument("--parallel", type=int, default=4, help="slots: prompts decoded together")
    llamacpp.add_argument("--threads", type=int, required=True)
    llamacpp.add_argument("--chat-template-file", help="a Jinja chat template instead of the file's own")
    llamacpp.set_defaults(func=_llamacpp_server)

    worker = sub.add_parser("worker", help="run the worker (configured by environment variables)")
    worker.set_defaults(func=_worker)

    from backend.entrypoints import cost_cli

    cost_cli.add_parser(sub)


def build_parser(prog: str = "tinyllama") -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:  # type: ignore[type-arg]
    """The top-level parser with the backend's subcommands; callers may add more."""
    parser = argparse.ArgumentParser(prog=prog, description="Your own LLM on your own cloud account.")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command")
    add_commands(sub)
    return parser, sub


def run(args: argparse.Namespace) -> int:
    """Run a parsed subcommand, with the log format every process shares."""
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


def main(argv: list[str] | None = None) -> int:
    """`python -m backend.entrypoints`: a subcommand is required (there is no app here)."""
    parser, _sub = build_parser("python -m backend.entrypoints")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose a command")
    return run(args)
