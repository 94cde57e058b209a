"""`tinyllama cost-estimate`: what a stack costs idle, before it is created."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from backend.core import pricing


def stack_parameter(text: str) -> tuple[str, str]:
    """argparse type for `-p Name=Value` stack parameters (shared with `tinyllama deploy`)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: write Name=Value, e.g. InstanceType=g5.xlarge")
    return key, value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `cost-estimate` subcommand to a `tinyllama` argparse subparsers object."""
    parser = subparsers.add_parser(
        "cost-estimate",
        help="price a stack's idle month and GPU hour",
        description="Price what a TinyLlama stack costs per month with no prompts, line by line, "
        "and per hour of GPU. Parameters use the template's names.",
    )
    parser.add_argument("--template", choices=["stack", "mvp"], default="stack")
    parser.add_argument("--profile", choices=sorted(pricing.PROFILES), default="default",
                        help="start from this parameter set (default: the template's defaults)")
    parser.add_argument("--parameter", "-p", action="append", type=stack_parameter, default=[],
                        metavar="NAME=VALUE", help="override one stack parameter (repeatable)")
    parser.add_argument("--kept-images", type=int, metavar="N",
                        help="baked worker images infra/pipeline.yaml keeps (its KeepImages; 0: the stock image; "
                        f"default {pricing.PIPELINE_KEEP_IMAGES}: the profiles boot a baked image)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the estimate; 2 with a message when a parameter value is not allowed."""
    parameters = {**pricing.PROFILES[args.profile], **dict(args.parameter)}
    try:
        kept = pricing.PIPELINE_KEEP_IMAGES if args.kept_images is None else args.kept_images
        if args.template != "stack":
            kept = 0  # the MVP boots no GPU image
        result = pricing.estimate(parameters, template=args.template, kept_images=kept)
    except ValueError as exc:
        print(f"cost-estimate: {exc}")
        return 2
    if args.json:
        print(json.dumps({
            "region": result.prices.region,
            "prices_as_of": result.prices.as_of,
            "idle_monthly_usd": result.idle_monthly_usd,
            "per_gpu_hour_usd": result.per_gpu_hour_usd,
            "idle_lines": [asdict(line) for line in result.idle_lines],
            "gpu_hour_lines": [asdict(line) for line in result.gpu_hour_lines],
        }, indent=2))
    else:
        print(pricing.format_estimate(result, f"TinyLlama {args.template}, {args.profile} profile"))
        goal = pricing.GOALS_USD.get(args.profile)
        if goal is not None and args.template == "stack":
            verdict = "within" if result.idle_monthly_usd <= goal else "ABOVE"
            print(f"Goal for the {args.profile} profile: idle at most ${goal:.2f}/month: {verdict} it")
    return 0
