"""setup-pipe, create-lambda-exec-role and clean-up as typed functions: each workflow checked,
compiled for where it goes, planned, and (unless a dry run) applied; each pipeline to remove
found, swept and removed. The commands (yunpipe.commands.deploy) print the plans in between.

Driven without a command line:
    for deployment in deploy(DeployOptions(("workflow.json",), AwsOptions(local=True))):
        print(deployment.model.input_bucket)
"""
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from yunpipe.aws.facade import UNREACHABLE, Aws
from yunpipe.aws.location import (
    LOCAL,
    LOCALSTACK,
    AwsOptions,
    Location,
    cloud_of,
    describe,
    intended,
    local_endpoint,
    open_with_region,
    resolve,
    same_place,
)
from yunpipe.aws.reader import Reader
from yunpipe.engine import compiler
from yunpipe.engine import model as m
from yunpipe.engine.executor import apply
from yunpipe.engine.network import subnet_reach
from yunpipe.engine.plan import Plan
from yunpipe.engine.planner import Planner
from yunpipe.engine.state import PipelineState, PipelineSummary, known_pipelines, state_path
from yunpipe.engine.sweeper import Sweeper, attached, discover
from yunpipe.engine.target import PLACEHOLDER_ACCOUNT, Target, resolve_instance_offers, resolve_target
from yunpipe.errors import InputError, NotFoundError, PipelineGone, YunpipeError
from yunpipe.operations.reach import reach
from yunpipe.registry import AlgorithmRegistry
from yunpipe.remote import SharedAlgorithms
from yunpipe.resolve import ResolvedWorkflow, resolve_workflow
from yunpipe.specs.loading import load_document
from yunpipe.specs.workflow import WorkflowSpec, load_workflow

UNREACHABLE_NOTE = "AWS is not reachable (no endpoint or no credentials): planned as if nothing existed."
PLACEHOLDER_KEYS = {"AWS_ACCESS_KEY_ID": "<your key id>", "AWS_SECRET_ACCESS_KEY": "<your secret key>"}


@dataclass(frozen=True)
class DeployOptions:
    """setup-pipe's (and create-lambda-exec-role's) input: the workflow files, where, and how."""
    files: tuple[str, ...]
    where: AwsOptions = field(default_factory=AwsOptions)
    dry_run: bool = False
    use_user_credential: bool = False  # -uu: the tasks get the caller's own keys (SSM secrets)
    launcher_roles_only: bool = False  # create-lambda-exec-role


@dataclass
class Deployment:
    """One workflow, compiled and planned: what apply_deployment applies."""
    model: m.PipelineModel
    aws: Aws
    location: Location
    state: PipelineState
    plan: Plan
    offline: bool
    launcher_roles_only: bool = False
    workflow: dict | None = None  # as the state records it (recorded_workflow)
    older_pins: tuple["OlderPin", ...] = ()


@dataclass(frozen=True)
class OlderPin:
    """A step whose workflow pins an older version of its algorithm than the newest recorded."""
    step: str
    where: str  # FILE: FIELD of the pin
    pinned: str  # NAME@VERSION
    newest: str  # NAME@VERSION


def older_pins(workflow: ResolvedWorkflow, registry: AlgorithmRegistry) -> tuple[OlderPin, ...]:
    """The steps that pin NAME@VERSION while a newer version is recorded: setup-pipe says so, as
    a fix wrapped since then does not run there. A step without a version takes the newest."""
    pins = []
    for index, step in enumerate(workflow.steps):
        if "@" not in step.spec.reference.rsplit("/", 1)[-1]:
            continue
        newer = registry.newer_than(step.record.reference)
        if newer is not None:
            pins.append(OlderPin(step.name, f"{workflow.spec.source}: {workflow.spec.steps_field}[{index}].name",
                                 step.record.reference, newer.reference))
    return tuple(pins)


def recorded_workflow(workflow: ResolvedWorkflow, use_user_credential: bool) -> dict:
    """The workflow as the pipeline's state keeps it, each step's algorithm pinned to the version
    deployed, so `yunpipe export PIPELINE` compiles the same model later."""
    spec = workflow.spec
    document = load_document(spec.source)
    steps = document["process"][spec.steps_field.split(".")[1]]
    for item, step in zip(steps, workflow.steps, strict=True):
        item["name"] = step.record.reference
    return {"source": spec.source, "document": document, "use_user_credential": use_user_credential}


def load_workflows(files: tuple[str, ...], where: AwsOptions) -> list[ResolvedWorkflow]:
    """Every workflow checked completely (files, registry, sizes) before any AWS change; the
    shared algorithms it names are pulled from S3 where the options point."""
    registry = SharedAlgorithms(AlgorithmRegistry(), lambda: resolve(where).open())
    workflows = [resolve_workflow(load_workflow(path), registry) for path in files]
    seen: dict[str, str] = {}
    for workflow in workflows:
        name = workflow.spec.name
        if name in seen:
            raise InputError(workflow.spec.source, "name", f"expected a pipeline name other than {seen[name]}'s ('{name}')")
        seen[name] = workflow.spec.source
        # The model is pure: compiling it with a placeholder account surfaces its input errors now.
        compiler.build_model(workflow, Target(PLACEHOLDER_ACCOUNT, workflow.spec.region or "us-east-1",
                                              local=cloud_of(where) == LOCAL))
    return workflows


def refuse_elsewhere(spec: WorkflowSpec, state: PipelineState, current: dict) -> None:
    """setup-pipe must not overwrite the state of a same-named pipeline that lives elsewhere
    (a local demo over an AWS pipeline called demo): it would lose track of that one."""
    recorded = state.summary.location if state.summary else None
    if recorded and not same_place(recorded, current):
        raise InputError(spec.source, "name", f"pipeline '{spec.name}' already lives in {describe(recorded)} "
                         f"({state_path(spec.name)}); clean-up {spec.name} first, or pick another name")


def _no_warning(pipeline: str) -> None:
    pass


def compile_pipeline(options: DeployOptions, workflow: ResolvedWorkflow, state: PipelineState,
                     warn_user_keys: Callable[[str], None] = _no_warning) -> tuple[Aws, Location, m.PipelineModel, bool]:
    """The facade, its location, the model for the real account/region/network, and whether AWS
    is offline. A pipeline of the same name recorded elsewhere stops it before anything is created."""
    spec = workflow.spec
    # Another cloud or endpoint is seen without any AWS call (nor a running local cloud).
    refuse_elsewhere(spec, state, intended(options.where))
    place = resolve(options.where, spec.region)
    aws = open_with_region(place)
    use_keys, dry_run = options.use_user_credential, options.dry_run
    credentials = {}
    if use_keys:
        warn_user_keys(spec.name)
        credentials = aws.credentials()
    target, offline = resolve_target(aws, spec.account_id, dry_run, spec.subnets, spec.security_groups, credentials)
    target = replace(target, local=place.cloud == LOCAL)
    if use_keys and not credentials:
        if not dry_run:
            raise YunpipeError("-uu: no AWS credentials found to store")
        target = Target(target.account_id, target.region, target.subnets, target.security_groups, PLACEHOLDER_KEYS)
    here = place.record(aws, target.account_id)
    # Offline (dry-run), the account is a guess: not compared.
    refuse_elsewhere(spec, state, {k: v for k, v in here.items() if not (offline and k == "account_id")})
    # Where and how big each instance type is, read now: the planner runs after the compiler.
    offers = {} if offline else resolve_instance_offers(
        aws, sorted({s.instance_type for s in workflow.steps if s.instance_type}), target.subnets)
    # What each subnet reaches (route tables, VPC endpoints): the tasks' public IP, or a refusal.
    # Not on LocalStack: it emulates EC2 with moto, whose default VPC has no internet gateway,
    # and no task of it leaves the machine.
    network = None if offline or place.cloud == LOCALSTACK else subnet_reach(Reader(aws), target.subnets)
    return aws, place, compiler.build_model(workflow, target, use_keys, offers, network), offline


def plan_deployment(options: DeployOptions, workflow: ResolvedWorkflow,
                    warn_user_keys: Callable[[str], None] = _no_warning) -> Deployment:
    """The workflow compiled where it goes, and its plan (with the sweep of what it no longer has);
    `warn_user_keys(pipeline)` runs before -uu reads the caller's keys."""
    state = PipelineState.load(workflow.spec.name)
    aws, place, model, offline = compile_pipeline(options, workflow, state, warn_user_keys)
    reader = Reader(aws, offline)
    if options.launcher_roles_only:
        plan = Planner(reader, state.keys()).plan(model, [s.launcher_role for s in model.steps])
    else:
        plan = Planner(reader, state.keys()).plan(model) + Sweeper(reader).plan(state.keys(), keep=model.keys())
    if offline:
        plan = plan + Plan(notes=(UNREACHABLE_NOTE,))
    return Deployment(model, aws, place, state, plan, offline, options.launcher_roles_only,
                      None if options.launcher_roles_only else recorded_workflow(workflow, options.use_user_credential),
                      older_pins(workflow, AlgorithmRegistry()))


def summary_of(deployment: Deployment) -> PipelineSummary:
    """The model's summary and where it is deployed, for the commands that name the pipeline."""
    model = deployment.model
    return replace(model.summary(), location=deployment.location.record(deployment.aws, model.target.account_id))


def apply_deployment(deployment: Deployment, echo: Callable[[str], None] = print) -> None:
    """Record the pipeline's summary, then apply the plan (resumable: the state keeps each step);
    `echo` shows each call as it goes."""
    state = deployment.state
    if deployment.launcher_roles_only:
        # The roles alone do not make a pipeline: a summary recorded by setup-pipe stays.
        state.summary = state.summary or summary_of(deployment)
    else:
        state.summary = summary_of(deployment)
        state.workflow = deployment.workflow
        state.save()
    apply(deployment.plan, deployment.aws, state, echo)


def _shown_nowhere(deployment: Deployment) -> None:
    pass


def deploy(options: DeployOptions, show: Callable[[Deployment], None] = _shown_nowhere,
           warn_user_keys: Callable[[str], None] = _no_warning,
           echo: Callable[[str], None] = print) -> Iterator[Deployment]:
    """Every workflow checked first (bad input stops all before any AWS call), then each in turn
    planned, shown (`show`: the plan is on the deployment), applied unless a dry run (`echo`: each
    call as it goes), and yielded. `warn_user_keys(pipeline)` runs before -uu reads the caller's keys."""
    for workflow in load_workflows(options.files, options.where):
        deployment = plan_deployment(options, workflow, warn_user_keys)
        show(deployment)
        if not options.dry_run:
            apply_deployment(deployment, echo)
        yield deployment


# ---------------------------------------------------------------------------- clean-up


@dataclass(frozen=True)
class CleanUpOptions:
    pipelines: tuple[str, ...] = ()
    all: bool = False  # every pipeline this machine records, and every one tagged where `where` points
    purge: bool = False  # also empty and delete the buckets
    dry_run: bool = False
    where: AwsOptions = field(default_factory=AwsOptions)


@dataclass
class CleanUp:
    pipeline: str
    state: PipelineState
    aws: Aws
    plan: Plan


def pipelines_to_clean(options: CleanUpOptions, discovery: Aws | None) -> list[str]:
    names = set(options.pipelines)
    if options.all:
        names.update(known_pipelines())
        if discovery is not None:
            reader = Reader(discovery)
            try:
                names.update(reader.pages("resourcegroupstaggingapi", "get_tag_values", "TagValues", Key=m.TAG_KEY))
                for role in reader.pages("iam", "list_roles", "Roles", PathPrefix=m.ROLE_PATH):
                    tags = reader.read("iam", "list_role_tags", ("NoSuchEntity",), RoleName=role["RoleName"])
                    names.update(t["Value"] for t in tags.get("Tags", []) if t["Key"] == m.TAG_KEY)
            except UNREACHABLE:
                if not options.dry_run:
                    raise
    if not names and not options.all:
        raise InputError("clean-up", "PIPELINE", "expected at least one pipeline name, or --all")
    return sorted(names)


def plan_one_clean_up(options: CleanUpOptions, pipeline: str, state: PipelineState, aws: Aws) -> Plan:
    reader = Reader(aws)
    candidates = state.keys()
    try:
        candidates |= discover(reader, pipeline)
        candidates |= attached(reader, pipeline, {key for kind, key in candidates if kind == "function"})
        if not candidates and not state.exists:
            here = Location(cloud_of(options.where), options.where.endpoint_url, profile=options.where.profile)
            place = describe(here.record(aws, aws.account_id()))
            raise NotFoundError(f"no pipeline '{pipeline}' found (no state on this machine, "
                                f"nothing tagged in {place})")
        return Sweeper(reader, options.purge).plan(candidates)
    except UNREACHABLE:
        if not options.dry_run:
            raise
        return Plan(notes=("AWS is not reachable: these are the resources the state file records",
                           *(f"{kind} {key}" for kind, key in sorted(candidates))))


def plan_clean_up(options: CleanUpOptions,
                  skipped: Callable[[str, YunpipeError], None] = lambda _pipeline, _error: None) -> list[CleanUp]:
    """Every pipeline looked up before any is removed: a name found nowhere stops them all. With
    --all, a pipeline that lives elsewhere than the options point is passed to `skipped`, not touched."""
    discovery = open_with_region(resolve(options.where)) if options.all else None
    work = []
    for pipeline in pipelines_to_clean(options, discovery):
        state = PipelineState.load(pipeline)
        try:
            aws = reach(options.where, pipeline, state.summary)
        except PipelineGone:
            # Nothing of it is left where it was: forgetting its record is the whole clean-up.
            note = "it was on a local cloud that has stopped since: nothing of it is left there; its record is forgotten"
            work.append(CleanUp(pipeline, state, Location.local_cloud(local_endpoint()).open(),
                                Plan(gone=tuple(state.resources), notes=(note,))))
            continue
        except YunpipeError as error:
            if not options.all:
                raise
            skipped(pipeline, error)
            continue
        work.append(CleanUp(pipeline, state, aws, plan_one_clean_up(options, pipeline, state, aws)))
    return work


def apply_clean_up(clean_up: CleanUp, purge: bool, echo: Callable[[str], None] = print) -> tuple[str, ...]:
    """Remove what the plan names (`echo`: each call as it goes); the state goes once nothing of
    the pipeline is left. Returns the buckets kept with their data (without --purge)."""
    state = clean_up.state
    apply(clean_up.plan, clean_up.aws, state, echo)
    kept: tuple[str, ...] = ()
    if all(kind == "bucket" for kind, _ in state.resources) and state.resources and not purge:
        kept = tuple(key for _, key in state.resources)
    if not state.resources:
        state.delete()
    return kept
