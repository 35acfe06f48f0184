"""setup-pipe, create-lambda-exec-role, clean-up and show: each plan is printed, then (unless
--dry-run) applied by yunpipe.operations.deploy. AWS failures (no credentials, no endpoint, a
refusal) become one line in cli.dispatch, for every verb."""
import argparse
import sys
from collections.abc import Iterator

from yunpipe.commands.common import aws_options
from yunpipe.engine import graph
from yunpipe.engine.plan import Plan
from yunpipe.engine.state import require_summary
from yunpipe.errors import YunpipeError
from yunpipe.operations.deploy import (
    CleanUpOptions,
    Deployment,
    DeployOptions,
    apply_clean_up,
    deploy,
    plan_clean_up,
)

USER_CREDENTIAL_WARNING = (
    "warning: -uu stores your own AWS keys as SSM SecureString parameters (/yunpipe/{pipeline}/...) that every "
    "task of this pipeline reads: the tasks get all of your permissions, and temporary keys stop working when "
    "they expire. Without -uu each task runs with a role limited to its own queue and buckets.")


def print_plan(title: str, plan: Plan, dry_run: bool) -> None:
    """A dry-run lists every call; a real run counts them here and the executor shows progress."""
    print(title)
    for note in plan.notes:
        print(f"  note: {note}")
    if not plan:
        print("  nothing to change")
    elif dry_run:
        for call in plan.calls:
            print(f"  - {call.message}")
    else:
        print(f"  {len(plan.calls)} change(s):")


def deploy_options(args: argparse.Namespace, launcher_roles_only: bool = False) -> DeployOptions:
    return DeployOptions(tuple(args.files), aws_options(args), bool(getattr(args, "dry_run", False)),
                         bool(getattr(args, "use_user_credential", False)), launcher_roles_only)


def print_deployment(deployment: Deployment, dry_run: bool) -> None:
    model = deployment.model
    if deployment.launcher_roles_only:
        title = f"Launcher roles of pipeline {model.name}:"
    else:
        title = f"Pipeline {model.name} in {model.target.region} (account {model.target.account_id}):"
        if dry_run:
            print("Steps:")
            for line in graph.describe(model.layout):
                print(f"  {line}")
    print_plan(title, deployment.plan, dry_run)
    if model.launch_type == "EC2" and not deployment.launcher_roles_only:
        print(f"  note: launch_type EC2 needs container instances in cluster {model.cluster.name}; "
              "yunpipe never creates EC2 instances")
    for pin in () if deployment.launcher_roles_only else deployment.older_pins:
        print(f"  warning: step {pin.step} runs {pin.pinned} ({pin.where}), but {pin.newest} is the newest recorded: "
              f"to run it, write {pin.newest} there (or {pin.newest.split('@')[0]} for the newest at each setup-pipe) "
              "and run setup-pipe again")


def deployed(options: DeployOptions) -> Iterator[Deployment]:
    """Every workflow checked first, then each planned, printed and (unless a dry run) applied;
    yields what it applied."""
    def warn(pipeline: str) -> None:
        print(USER_CREDENTIAL_WARNING.format(pipeline=pipeline), file=sys.stderr)

    for deployment in deploy(options, lambda planned: print_deployment(planned, options.dry_run), warn):
        if options.dry_run:
            print("Dry run: nothing was changed.")
            continue
        yield deployment


def run_setup_pipe(args: argparse.Namespace) -> int:
    for deployment in deployed(deploy_options(args)):
        model = deployment.model
        print(f"Pipeline {model.name} is ready ({deployment.aws.mutating_calls} change(s) made).")
        print(f"You can start upload files at {model.input_bucket}")
        print(f"You will get your result at {model.output_bucket}")
    return 0


def run_create_lambda_exec_role(args: argparse.Namespace) -> int:
    for deployment in deployed(deploy_options(args, launcher_roles_only=True)):
        for step in deployment.model.steps:
            print(f"Launcher role of {step.name}: {step.launcher_role.arn}")
    return 0


def run_clean_up(args: argparse.Namespace) -> int:
    options = CleanUpOptions(tuple(args.pipelines), args.all, args.purge, args.dry_run, aws_options(args))

    def skipped(pipeline: str, error: YunpipeError) -> None:
        # --all removes what lives where the flags point; a pipeline elsewhere is named, not touched.
        print(f"Skipped pipeline {pipeline}: {error}")

    work = plan_clean_up(options, skipped)
    if options.all and not work:
        print("No pipeline to clean up.")
    for clean_up in work:
        pipeline = clean_up.pipeline
        print_plan(f"Clean up pipeline {pipeline}:", clean_up.plan, options.dry_run)
        if options.dry_run:
            print("Dry run: nothing was changed.")
            continue
        kept = apply_clean_up(clean_up, options.purge)
        if kept:
            print(f"Kept bucket(s) {', '.join(kept)} with their data; clean-up --purge {pipeline} deletes them.")
        print(f"Pipeline {pipeline} is cleaned up.")
    return 0


def run_show(args: argparse.Namespace) -> int:
    summary = require_summary(args.pipeline)
    layout = graph.Layout.from_document(summary.layout) if summary.layout else graph.chain_of(summary)
    print(graph.dot(layout, summary.pipeline) if args.dot else "\n".join(graph.describe(layout)), end="\n" * (not args.dot))
    return 0
