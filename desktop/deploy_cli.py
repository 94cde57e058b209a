"""`tinyllama deploy`: the desktop wizard's deploy flow as a command (no Qt), for scripts.

    tinyllama deploy --stack-name tinyllama --template stack -p AlertEmail=me@example.com
    tinyllama deploy --stack-name tinyllama --delete --empty-data-bucket --yes

The same steps as the wizard (desktop/services/deploy/flow.py): identity and the stack as it
is, the parameters merged by the one rule, build and upload, the change set (or the planned
adds of a direct create) shown as a table, confirmation (or --yes), then the stack events
until the stack settles. Exit status 0 when the stack ends complete, 1 on failure (the
reason and what to do are printed), 2 for bad input, 3 when the change was declined.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from backend.core import pricing
from backend.entrypoints.cost_cli import stack_parameter


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `deploy` subcommand to a `tinyllama` argparse subparsers object."""
    parser = subparsers.add_parser(
        "deploy", help="deploy, update or delete a TinyLlama stack in your AWS account",
        description="Create or update a TinyLlama stack (review the change set, then follow its events), "
        "or delete it. Credentials come from the standard AWS configuration (--profile, environment).")
    parser.add_argument("--stack-name", default="tinyllama")
    parser.add_argument("--template", choices=["stack", "mvp"], default="stack")
    parser.add_argument("--template-file", type=Path, help="a template other than the bundled one")
    parser.add_argument("--profile", help="AWS profile from ~/.aws/config")
    parser.add_argument("--region", help="AWS region (default: the profile's)")
    parser.add_argument("--cheap", action="store_true", help="start from the cheap parameter set")
    parser.add_argument("--parameter", "-p", action="append", type=stack_parameter, default=[],
                        metavar="NAME=VALUE", help="a stack parameter (repeatable)")
    parser.add_argument("--router-zip", type=Path, help="a router zip already built (skips the build)")
    parser.add_argument("--worker-wheel", type=Path, help="a worker wheel already built (skips the build)")
    parser.add_argument("--yes", "-y", action="store_true", help="execute without asking")
    parser.add_argument("--direct", action="store_true",
                        help="create/update without a change set (for emulators whose change sets are broken)")
    parser.add_argument("--delete", action="store_true", help="delete the stack instead")
    parser.add_argument("--empty-data-bucket", action="store_true",
                        help="with --delete: empty the stack's data bucket first (its data is lost)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)
    return parser


def _confirm(prompt: str, stdin: TextIO, out: TextIO) -> bool:
    out.write(prompt)
    out.flush()
    return stdin.readline().strip().lower() in {"y", "yes"}


def run(args: argparse.Namespace, *, stdin: TextIO | None = None, out: TextIO | None = None,
        deployer_factory: Callable[..., Any] | None = None) -> int:
    """Run the subcommand; returns the exit status. The steps are the deploy flow's, the
    same the wizard's pages call (desktop/services/deploy/flow.py)."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    import boto3
    from botocore.exceptions import BotoCoreError

    from desktop.services import artifacts
    from desktop.services.deploy import flow
    from desktop.services.deploy.errors import DeployError, translate
    from desktop.services.deploy.stack import StackDeployer

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    try:
        try:
            session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        except BotoCoreError as exc:  # ProfileNotFound
            raise translate(exc, "reading the profile") from exc
        factory = deployer_factory or StackDeployer
        deployer = factory(session=session, region=session.region_name or "us-east-1",
                           use_change_sets=not args.direct)
        found = flow.check(deployer, args.stack_name)
        who = found.identity
        say(f"Deploying as {who.arn} (account {who.account}) in {who.region}")
        if args.delete:
            return _delete(deployer, args, say, stdin, out)

        builders = artifacts.Builders()
        if args.router_zip:
            builders.router_zip = lambda _dir: args.router_zip
        if args.worker_wheel:
            builders.worker_wheel = lambda _dir: args.worker_wheel
        if args.template_file:
            if not args.template_file.is_file():
                say(f"deploy: there is no template file {args.template_file}")
                return 2
            builders.templates = {**builders.templates, args.template: args.template_file}
        template_text = builders.templates[args.template].read_text(encoding="utf-8")
        # The profile layer of the merge: the cheap set, when asked for.
        chosen = dict(pricing.CHEAP_PARAMETERS) if args.cheap and args.template == "stack" else {}
        explicit = dict(args.parameter)
        parameters = flow.parameters_for(template_text, found.parameters, chosen, explicit)
        problems = _missing(args.template, parameters)
        if problems:
            say("deploy: " + "; ".join(problems))
            return 2
        if args.template == "stack":
            try:
                est = pricing.estimate({k: v for k, v in parameters.items() if k in pricing.DEFAULT_PARAMETERS})
            except ValueError as exc:
                say(f"deploy: {exc}")
                return 2
            say(f"Idle cost about ${est.idle_monthly_usd:.2f}/month; ${est.per_gpu_hour_usd:.3f} per GPU hour.")
        with tempfile.TemporaryDirectory(prefix="tinyllama-deploy-") as tmp:
            uploaded = flow.build_and_upload(deployer, who.account, args.template, Path(tmp), builders, say)
        review = flow.review(deployer, args.stack_name, template_text, uploaded, current=found.parameters,
                             chosen=chosen, explicit=explicit)
        if review.no_changes:
            say("No changes: the stack already matches.")
            return 0
        _print_review(review, say)
        if not args.yes and not _confirm(f"Execute this {review.change_type.lower()}? [y/N] ", stdin, out):
            flow.discard(deployer, review)
            say("Nothing was changed.")
            return 3
        code = _follow(deployer, flow.start(deployer, review), args, say)
        if code == 0:
            for key, value in flow.outputs(deployer, args.stack_name).items():
                say(f"  {key} = {value}")
        return code
    except DeployError as exc:
        say(f"deploy: {exc}")
        return 1
    except KeyboardInterrupt:
        say("Interrupted: the stack operation goes on in AWS; run again or use the console to follow it.")
        return 130


def _missing(template: str, parameters: dict[str, str]) -> list[str]:
    problems = []
    if "AlertEmail" not in parameters:
        problems.append("give -p AlertEmail=you@example.com (budget alerts go there)")
    if template == "mvp" and parameters.get("SourceConnectionArn") and not parameters.get("SourceRepositoryUrl"):
        problems.append("give -p SourceRepositoryUrl=https://… (the build project clones it through the connection)")
    return problems


def _print_review(review: Any, say: Callable[[str], None]) -> None:
    if not review.rows:
        say(f"{review.change_type} of {review.stack_name} (no change set: resources not listed in advance)")
        return
    say(f"{review.change_type} of {review.stack_name}:")
    width = max(len(r.logical_id) for r in review.rows)
    for row in review.rows:
        flag = "  REPLACED" if row.replacement == "True" else "  may be replaced" if row.replacement == "Conditional" \
            else ""
        say(f"  {row.action:<7} {row.logical_id:<{width}}  {row.resource_type}{flag}")


def _follow(deployer: Any, watcher: Any, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    def show(update: Any) -> None:
        for e in update.events:
            say(f"  {e.timestamp:%H:%M:%S} {e.logical_id:<28} {e.status:<28} {e.reason}".rstrip())

    final = deployer.follow(watcher, show, interval_s=args.poll_interval)
    if final.succeeded:
        say(f"{args.stack_name}: {final.status}")
        return 0
    say(f"{args.stack_name}: {final.status}")
    say(f"Why: {final.failure}")
    say(f"Next: {final.advice}")
    return 1


def _delete(deployer: Any, args: argparse.Namespace, say: Callable[[str], None], stdin: TextIO,
            out: TextIO) -> int:
    from desktop.services.deploy import flow

    review, data_bucket = flow.plan_delete(deployer, args.stack_name)
    _print_review(review, say)
    if data_bucket:
        say(f"The data bucket {data_bucket} holds the stack's data; CloudFormation cannot delete it unless it is "
            "empty." + ("" if args.empty_data_bucket else " Add --empty-data-bucket to empty it first."))
    if not args.yes and not _confirm(f"Delete {args.stack_name}? [y/N] ", stdin, out):
        say("Nothing was deleted.")
        return 3
    if data_bucket and args.empty_data_bucket:
        say(f"Emptying {data_bucket} first (its data is lost)")
    return _follow(deployer, flow.start(deployer, review, data_bucket if args.empty_data_bucket else ""), args, say)
