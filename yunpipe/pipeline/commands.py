"""setup-pipe, clean-up, create-lambda-exec-role, status and logs: each validates its input,
plans, prints the plan and (unless --dry-run) applies it."""
import contextlib
import sys
import time

from yunpipe.aws.facade import UNREACHABLE, Aws, BotoCoreError, ClientError
from yunpipe.aws.session import open_aws
from yunpipe.errors import InputError, YunpipeError
from yunpipe.pipeline import model as m
from yunpipe.pipeline import status
from yunpipe.pipeline.executor import apply
from yunpipe.pipeline.plan import Plan
from yunpipe.pipeline.planner import Planner, Reader, resolve_target
from yunpipe.pipeline.state import PipelineState, known_pipelines, require_summary
from yunpipe.pipeline.sweeper import Sweeper, attached, discover
from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.workflow import ResolvedWorkflow, load_workflow, resolve_workflow

UNREACHABLE_NOTE = "AWS is not reachable (no endpoint or no credentials): planned as if nothing existed."
USER_CREDENTIAL_WARNING = (
    "warning: -uu stores your own AWS keys as SSM SecureString parameters (/yunpipe/{pipeline}/...) that every "
    "task of this pipeline reads: the tasks get all of your permissions, and temporary keys stop working when "
    "they expire. Without -uu each task runs with a role limited to its own queue and buckets.")


def load_workflows(files: list[str]) -> list[ResolvedWorkflow]:
    """Every workflow checked completely (files, registry, sizes) before any AWS call."""
    registry = AlgorithmRegistry()
    workflows = [resolve_workflow(load_workflow(path), registry) for path in files]
    seen = {}
    for workflow in workflows:
        name = workflow.spec.name
        if name in seen:
            raise InputError(workflow.spec.source, "name", f"expected a pipeline name other than {seen[name]}'s ('{name}')")
        seen[name] = workflow.spec.source
        # The model is pure: compiling it with a placeholder account surfaces its input errors now.
        m.build_model(workflow, m.Target(m.PLACEHOLDER_ACCOUNT, workflow.spec.region or "us-east-1"))
    return workflows


def _aws_for(args, region: str | None) -> Aws:
    aws = open_aws(args, region)
    if not aws.region:
        raise YunpipeError("no AWS region: pass --region, or set region in the workflow or your AWS profile")
    return aws


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


def compile_pipeline(args, workflow: ResolvedWorkflow) -> tuple[Aws, m.PipelineModel, bool]:
    """The facade, the model for the real account/region/network, and whether AWS is offline."""
    spec = workflow.spec
    aws = _aws_for(args, spec.region)
    use_keys = getattr(args, "use_user_credential", False)
    credentials = {}
    if use_keys:
        print(USER_CREDENTIAL_WARNING.format(pipeline=spec.name), file=sys.stderr)
        credentials = aws.credentials()
    target, offline = resolve_target(aws, spec.account_id, args.dry_run, spec.subnets, spec.security_groups, credentials)
    if use_keys and not credentials:
        if not args.dry_run:
            raise YunpipeError("-uu: no AWS credentials found to store")
        target = m.Target(target.account_id, target.region, target.subnets, target.security_groups,
                          {"AWS_ACCESS_KEY_ID": "<your key id>", "AWS_SECRET_ACCESS_KEY": "<your secret key>"})
    return aws, m.build_model(workflow, target, use_keys), offline


@contextlib.contextmanager
def aws_errors():
    """AWS refusing or unreachable is explained in one line, not a traceback."""
    try:
        yield
    except UNREACHABLE as error:
        raise YunpipeError(f"cannot reach AWS: {error}") from None
    except (ClientError, BotoCoreError) as error:
        raise YunpipeError(str(error)) from None


def run_setup_pipe(args) -> int:
    workflows = load_workflows(args.files)
    with aws_errors():
        return _setup_pipes(args, workflows)


def _setup_pipes(args, workflows: list[ResolvedWorkflow]) -> int:
    for workflow in workflows:
        aws, model, offline = compile_pipeline(args, workflow)
        state = PipelineState.load(model.name)
        reader = Reader(aws, offline)
        plan = Planner(reader, state.keys()).plan(model) + Sweeper(reader).plan(state.keys(), keep=model.keys())
        if offline:
            plan = plan + Plan(notes=(UNREACHABLE_NOTE,))
        print_plan(f"Pipeline {model.name} in {model.target.region} (account {model.target.account_id}):", plan, args.dry_run)
        if model.launch_type == "EC2":
            print(f"  note: launch_type EC2 needs container instances in cluster {model.cluster.name}; "
                  "yunpipe never creates EC2 instances")
        if args.dry_run:
            print("Dry run: nothing was changed.")
            continue
        state.summary = model.summary()
        state.save()
        apply(plan, aws, state)
        print(f"Pipeline {model.name} is ready ({aws.mutating_calls} change(s) made).")
        print(f"You can start upload files at {model.input_bucket}")
        print(f"You will get your result at {model.output_bucket}")
    return 0


def run_create_lambda_exec_role(args) -> int:
    args.dry_run = False
    workflows = load_workflows(args.files)
    with aws_errors():
        return _create_roles(args, workflows)


def _create_roles(args, workflows: list[ResolvedWorkflow]) -> int:
    for workflow in workflows:
        aws, model, _ = compile_pipeline(args, workflow)
        state = PipelineState.load(model.name)
        plan = Planner(Reader(aws), state.keys()).plan(model, [s.launcher_role for s in model.steps])
        print_plan(f"Launcher roles of pipeline {model.name}:", plan, dry_run=False)
        state.summary = state.summary or model.summary()
        apply(plan, aws, state)
        for step in model.steps:
            print(f"Launcher role of {step.name}: {step.launcher_role.arn}")
    return 0


def _pipelines_to_clean(args, aws_for_discovery: Aws | None) -> list[str]:
    names = set(args.pipelines)
    if args.all:
        names.update(known_pipelines())
        if aws_for_discovery is not None:
            reader = Reader(aws_for_discovery)
            try:
                names.update(reader.pages("resourcegroupstaggingapi", "get_tag_values", "TagValues", Key=m.TAG_KEY))
                for role in reader.pages("iam", "list_roles", "Roles", PathPrefix=m.ROLE_PATH):
                    tags = reader.read("iam", "list_role_tags", ("NoSuchEntity",), RoleName=role["RoleName"])
                    names.update(t["Value"] for t in tags.get("Tags", []) if t["Key"] == m.TAG_KEY)
            except UNREACHABLE:
                if not args.dry_run:
                    raise
    if not names:
        raise InputError("clean-up", "PIPELINE", "expected at least one pipeline name, or --all")
    return sorted(names)


def run_clean_up(args) -> int:
    with aws_errors():
        return _clean_up(args)


def _clean_up(args) -> int:
    discovery = _aws_for(args, None) if args.all else None
    for pipeline in _pipelines_to_clean(args, discovery):
        state = PipelineState.load(pipeline)
        aws = _aws_for(args, state.summary.get("region"))
        reader = Reader(aws)
        candidates = state.keys()
        try:
            candidates |= discover(reader, pipeline)
            candidates |= attached(reader, pipeline, {key for kind, key in candidates if kind == "function"})
            plan = Sweeper(reader, args.purge).plan(candidates)
        except UNREACHABLE:
            if not args.dry_run:
                raise
            plan = Plan(notes=("AWS is not reachable: these are the resources the state file records",)
                        + tuple(f"{kind} {key}" for kind, key in sorted(candidates)))
        print_plan(f"Clean up pipeline {pipeline}:", plan, args.dry_run)
        if args.dry_run:
            print("Dry run: nothing was changed.")
            continue
        apply(plan, aws, state)
        if all(kind == "bucket" for kind, _ in state.resources) and state.resources and not args.purge:
            print(f"Kept bucket(s) {', '.join(k for _, k in state.resources)} with their data; "
                  f"clean-up --purge {pipeline} deletes them.")
        if not state.resources:
            state.delete()
        print(f"Pipeline {pipeline} is cleaned up.")
    return 0


def run_status(args) -> int:
    summary = require_summary(args.pipeline)
    reader = Reader(_aws_for(args, summary["region"]))
    print(status.render(summary, status.collect(reader, summary)))
    return 0


def run_logs(args) -> int:
    summary = require_summary(args.pipeline)
    aws = _aws_for(args, summary["region"])
    steps = [s["name"] for s in summary["steps"]]
    if args.step and args.step not in steps:
        raise InputError("logs", "--step", f"expected one of the pipeline's steps ({', '.join(steps)}), got '{args.step}'")
    params = {"logGroupName": summary["log_group"]}
    prefix = f"{m.container_name(args.step)}/" if args.step else ""
    if prefix:
        params["logStreamNamePrefix"] = prefix
    start, seen = 0, set()
    while True:
        events = aws.pages("logs", "filter_log_events", "events", startTime=start, **params)
        for event in events:
            # Checked here too: some emulators ignore logStreamNamePrefix.
            if event["eventId"] in seen or not event["logStreamName"].startswith(prefix):
                continue
            seen.add(event["eventId"])
            start = max(start, event["timestamp"])
            print(f"{event['logStreamName'].split('/', 1)[0]} | {event['message'].rstrip()}")
        if not args.follow:
            return 0
        time.sleep(2)

