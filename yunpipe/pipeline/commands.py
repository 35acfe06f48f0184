"""setup-pipe, clean-up, create-lambda-exec-role, status and logs: each validates its input,
plans, prints the plan and (unless --dry-run) applies it."""
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

from yunpipe.aws.facade import UNREACHABLE, Aws
from yunpipe.aws.reader import Reader
from yunpipe.aws.session import AwsOptions, open_aws
from yunpipe.engine import compiler, graph
from yunpipe.engine import model as m
from yunpipe.engine.executor import apply
from yunpipe.engine.plan import Plan
from yunpipe.engine.planner import Planner
from yunpipe.engine.state import PipelineState, PipelineSummary, known_pipelines, require_summary
from yunpipe.engine.sweeper import Sweeper, attached, discover
from yunpipe.engine.target import PLACEHOLDER_ACCOUNT, Target, resolve_target
from yunpipe.errors import InputError, NotFoundError, YunpipeError
from yunpipe.pipeline import location, status
from yunpipe.registry import AlgorithmRegistry
from yunpipe.remote import SharedAlgorithms
from yunpipe.resolve import ResolvedWorkflow, resolve_workflow
from yunpipe.specs.workflow import load_workflow

UNREACHABLE_NOTE = "AWS is not reachable (no endpoint or no credentials): planned as if nothing existed."
USER_CREDENTIAL_WARNING = (
    "warning: -uu stores your own AWS keys as SSM SecureString parameters (/yunpipe/{pipeline}/...) that every "
    "task of this pipeline reads: the tasks get all of your permissions, and temporary keys stop working when "
    "they expire. Without -uu each task runs with a role limited to its own queue and buckets.")


def load_workflows(files: list[str], options: AwsOptions) -> list[ResolvedWorkflow]:
    """Every workflow checked completely (files, registry, sizes) before any AWS change; the
    shared algorithms it names are pulled from S3 with the command's AWS options."""
    registry = SharedAlgorithms(AlgorithmRegistry(), lambda: open_aws(options))
    workflows = [resolve_workflow(load_workflow(path), registry) for path in files]
    seen: dict[str, str] = {}
    for workflow in workflows:
        name = workflow.spec.name
        if name in seen:
            raise InputError(workflow.spec.source, "name", f"expected a pipeline name other than {seen[name]}'s ('{name}')")
        seen[name] = workflow.spec.source
        # The model is pure: compiling it with a placeholder account surfaces its input errors now.
        compiler.build_model(workflow, Target(PLACEHOLDER_ACCOUNT, workflow.spec.region or "us-east-1"))
    return workflows


def _aws_for(options: AwsOptions, region: str | None) -> Aws:
    aws = open_aws(options, region)
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


def compile_pipeline(options: AwsOptions, workflow: ResolvedWorkflow, state: PipelineState, dry_run: bool,
                     use_keys: bool = False) -> tuple[Aws, m.PipelineModel, bool]:
    """The facade, the model for the real account/region/network, and whether AWS is offline.
    A pipeline of the same name recorded elsewhere stops it before anything is created."""
    spec = workflow.spec
    # Another cloud or endpoint is seen without any AWS call (nor a running local cloud).
    location.refuse_elsewhere(spec, state, location.intended(options))
    aws = _aws_for(options, spec.region)
    credentials = {}
    if use_keys:
        print(USER_CREDENTIAL_WARNING.format(pipeline=spec.name), file=sys.stderr)
        credentials = aws.credentials()
    target, offline = resolve_target(aws, spec.account_id, dry_run, spec.subnets, spec.security_groups, credentials)
    if use_keys and not credentials:
        if not dry_run:
            raise YunpipeError("-uu: no AWS credentials found to store")
        target = Target(target.account_id, target.region, target.subnets, target.security_groups,
                        {"AWS_ACCESS_KEY_ID": "<your key id>", "AWS_SECRET_ACCESS_KEY": "<your secret key>"})
    here = location.record(options, aws, target.account_id)
    # Offline (dry-run), the account is a guess: not compared.
    location.refuse_elsewhere(spec, state, {k: v for k, v in here.items() if not (offline and k == "account_id")})
    return aws, compiler.build_model(workflow, target, use_keys), offline


def summary_of(options: AwsOptions, aws: Aws, model: m.PipelineModel) -> PipelineSummary:
    """The model's summary and where it is deployed, for the commands that name the pipeline."""
    return replace(model.summary(), location=location.record(options, aws, model.target.account_id))


def run_show(args) -> int:
    summary = require_summary(args.pipeline)
    layout = graph.Layout.from_document(summary.layout) if summary.layout else graph.chain_of(summary)
    print(graph.dot(layout, summary.pipeline) if args.dot else "\n".join(graph.describe(layout)), end="\n" * (not args.dot))
    return 0


# AWS failures (no credentials, no endpoint, a refusal) become one line in cli.dispatch, for every verb.
def run_setup_pipe(args) -> int:
    for aws, model in deploy(args):
        print(f"Pipeline {model.name} is ready ({aws.mutating_calls} change(s) made).")
        print(f"You can start upload files at {model.input_bucket}")
        print(f"You will get your result at {model.output_bucket}")
    return 0


def run_create_lambda_exec_role(args) -> int:
    for _, model in deploy(args, launcher_roles_only=True):
        for step in model.steps:
            print(f"Launcher role of {step.name}: {step.launcher_role.arn}")
    return 0


def deploy(args, launcher_roles_only: bool = False) -> Iterator[tuple[Aws, m.PipelineModel]]:
    """setup-pipe, or only its launcher roles (create-lambda-exec-role): every workflow checked
    first, then each planned, printed and (unless a dry-run) applied; yields what it applied."""
    options = AwsOptions.from_args(args)
    dry_run = getattr(args, "dry_run", False)
    for workflow in load_workflows(args.files, options):
        state = PipelineState.load(workflow.spec.name)
        aws, model, offline = compile_pipeline(options, workflow, state, dry_run,
                                               getattr(args, "use_user_credential", False))
        reader = Reader(aws, offline)
        if launcher_roles_only:
            title = f"Launcher roles of pipeline {model.name}:"
            plan = Planner(reader, state.keys()).plan(model, [s.launcher_role for s in model.steps])
        else:
            title = f"Pipeline {model.name} in {model.target.region} (account {model.target.account_id}):"
            plan = Planner(reader, state.keys()).plan(model) + Sweeper(reader).plan(state.keys(), keep=model.keys())
        if offline:
            plan = plan + Plan(notes=(UNREACHABLE_NOTE,))
        if dry_run and not launcher_roles_only:
            print("Steps:")
            for line in graph.describe(model.layout):
                print(f"  {line}")
        print_plan(title, plan, dry_run)
        if model.launch_type == "EC2" and not launcher_roles_only:
            print(f"  note: launch_type EC2 needs container instances in cluster {model.cluster.name}; "
                  "yunpipe never creates EC2 instances")
        if dry_run:
            print("Dry run: nothing was changed.")
            continue
        if launcher_roles_only:
            # The roles alone do not make a pipeline: a summary recorded by setup-pipe stays.
            state.summary = state.summary or summary_of(options, aws, model)
        else:
            state.summary = summary_of(options, aws, model)
            state.save()
        apply(plan, aws, state)
        yield aws, model


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
    if not names and not args.all:
        raise InputError("clean-up", "PIPELINE", "expected at least one pipeline name, or --all")
    return sorted(names)


def run_clean_up(args) -> int:
    options = AwsOptions.from_args(args)
    discovery = _aws_for(options, None) if args.all else None
    # Every pipeline is looked up before any is removed: a name found nowhere stops them all.
    work = []
    for pipeline in _pipelines_to_clean(args, discovery):
        state = PipelineState.load(pipeline)
        try:
            aws = location.open_pipeline_aws(options, pipeline, state.summary)
        except YunpipeError as error:
            if not args.all:
                raise
            # --all removes what lives where the flags point; a pipeline elsewhere is named, not touched.
            print(f"Skipped pipeline {pipeline}: {error}")
            continue
        reader = Reader(aws)
        candidates = state.keys()
        try:
            candidates |= discover(reader, pipeline)
            candidates |= attached(reader, pipeline, {key for kind, key in candidates if kind == "function"})
            if not candidates and not state.exists:
                place = location.describe(location.record(options, aws, aws.account_id()))
                raise NotFoundError(f"no pipeline '{pipeline}' found (no state on this machine, "
                                    f"nothing tagged in {place})")
            plan = Sweeper(reader, args.purge).plan(candidates)
        except UNREACHABLE:
            if not args.dry_run:
                raise
            plan = Plan(notes=("AWS is not reachable: these are the resources the state file records",)
                        + tuple(f"{kind} {key}" for kind, key in sorted(candidates)))
        work.append((pipeline, state, aws, plan))
    if args.all and not work:
        print("No pipeline to clean up.")
    for pipeline, state, aws, plan in work:
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
    reader = Reader(location.open_pipeline_aws(AwsOptions.from_args(args), args.pipeline, summary))
    print(status.render(summary, status.collect(reader, summary)))
    return 0


def run_logs(args) -> int:
    summary = require_summary(args.pipeline)
    aws = location.open_pipeline_aws(AwsOptions.from_args(args), args.pipeline, summary)
    steps = [s.name for s in summary.steps]
    if args.step and args.step not in steps:
        raise InputError("logs", "--step", f"expected one of the pipeline's steps ({', '.join(steps)}), got '{args.step}'")
    params = {"logGroupName": summary.log_group}
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

