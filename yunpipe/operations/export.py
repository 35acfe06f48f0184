"""`yunpipe export`: a workflow file, or the workflow a deployed pipeline was last set up from,
compiled as setup-pipe compiles it (same account, region, network and instance offers when AWS
can be reached) and rendered as a CloudFormation template. Reads only: nothing is created.

    model, rendering = export(ExportOptions(file="workflow.json"))
    Path("pipeline.yaml").write_text(rendering.text)
"""
from dataclasses import dataclass, field

from yunpipe.aws.facade import Aws
from yunpipe.aws.location import AwsOptions, open_with_region, resolve
from yunpipe.engine import compiler
from yunpipe.engine.cloudformation import Rendering, render
from yunpipe.engine.model import PipelineModel
from yunpipe.engine.state import PipelineState, known_pipelines, state_path
from yunpipe.engine.target import resolve_instance_offers, resolve_target
from yunpipe.errors import InputError, NotFoundError
from yunpipe.operations.deploy import PLACEHOLDER_KEYS, load_workflows
from yunpipe.operations.reach import reach
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import ResolvedWorkflow, resolve_workflow
from yunpipe.specs.workflow import parse_workflow


@dataclass(frozen=True)
class ExportOptions:
    file: str = ""  # a workflow file, or
    pipeline: str = ""  # a pipeline set up from this machine
    where: AwsOptions = field(default_factory=AwsOptions)
    use_user_credential: bool = False  # -uu, for a file (a pipeline's record says whether it had it)


def _recorded(pipeline: str) -> tuple[ResolvedWorkflow, PipelineState, bool]:
    state = PipelineState.load(pipeline)
    if not state.exists:
        known = ", ".join(known_pipelines()) or "none"
        raise NotFoundError(f"no pipeline '{pipeline}' set up from this machine (known: {known}); export -f its "
                            "workflow file instead")
    if state.workflow is None:
        raise NotFoundError(f"{state_path(pipeline)} records no workflow (set up by an older yunpipe, or not "
                            f"completely): export -f its workflow file, or run setup-pipe again")
    recorded = state.workflow
    source = f"{recorded['source']} (as recorded in {state_path(pipeline)})"
    workflow = resolve_workflow(parse_workflow(recorded["document"], source), AlgorithmRegistry())
    return workflow, state, bool(recorded.get("use_user_credential"))


def export(options: ExportOptions) -> tuple[PipelineModel, Rendering]:
    """The model setup-pipe would build, and its template; AWS is only read, and when it cannot be
    reached the account is the workflow's (or a placeholder) and the subnets are the workflow's."""
    aws: Aws
    if options.pipeline and options.use_user_credential:
        raise InputError("export", "-uu", "expected -uu only with -f: a pipeline's record says whether it was set up "
                                          "with -uu")
    if options.pipeline:
        workflow, state, use_keys = _recorded(options.pipeline)
        aws = reach(options.where, options.pipeline, state.summary)
    else:
        workflow, use_keys = load_workflows((options.file,), options.where)[0], options.use_user_credential
        aws = open_with_region(resolve(options.where, workflow.spec.region))
    spec = workflow.spec
    # -uu's parameters appear by name only: the keys are never read.
    target, offline = resolve_target(aws, spec.account_id, True, spec.subnets, spec.security_groups,
                                     PLACEHOLDER_KEYS if use_keys else {})
    offers = {} if offline else resolve_instance_offers(
        aws, sorted({s.instance_type for s in workflow.steps if s.instance_type}), target.subnets)
    model = compiler.build_model(workflow, target, use_keys, offers)
    notes = () if not offline else (f"AWS was not reachable when exporting: account {target.account_id} is the "
                                    "workflow's account_id or a placeholder; export again where AWS is reachable",)
    return model, render(model, notes)
