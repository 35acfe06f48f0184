"""The workflow spec read by setup-pipe: the 0.0.3 workflow JSON plus optional new fields.

A workflow is a chain (`single_run`, `sequence_run`: `process.algorithms` in order) or a graph
(`graph`: `process.steps`, each naming the steps it comes `after`). Every field is declared once,
on the dataclasses below (yunpipe.specs.fields): the schema and the parser derive from them.
`load_workflow` checks the file on its own, the graph included; `yunpipe.resolve.resolve_workflow`
checks it against the algorithm registry. Both raise InputError before anything touches AWS.
"""
import ipaddress
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from yunpipe.errors import InputError
from yunpipe.runtime import contract
from yunpipe.specs.fields import object_schema, read_fields, spec_field
from yunpipe.specs.loading import load_document, validate
from yunpipe.specs.notify import NOTIFY_SCHEMA, Subscriber, parse_notify
from yunpipe.specs.secrets import SECRETS_SCHEMA, Secret, parse_secrets

CHAIN_TYPES = ("single_run", "sequence_run")
PROCESS_TYPES = (*CHAIN_TYPES, "graph")
PIPELINE_NAME_PATTERN = r"\A[a-z0-9][a-z0-9-]{0,23}\Z"
# A step's algorithm: its parts are checked where it is resolved (yunpipe.registry, yunpipe.remote);
# here, that it is one line of text of a reasonable length.
STEP_REFERENCE_PATTERN = r"\A[^\x00-\x1f]+\Z"
# A step id names AWS resources and a `$input_<id>` placeholder: short, lower-case, no '_'.
STEP_ID_PATTERN = r"\A[a-z0-9][a-z0-9-]{0,23}\Z"
BUCKET_CHARS = re.compile(r"\A[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]
# Fargate gives every task 20 GiB; more is asked for per task definition, 21 to 200 GiB.
EPHEMERAL_STORAGE_SCHEMA = {"type": "integer", "minimum": 21, "maximum": 200,
                            "description": "GiB of task storage from 21 to 200 (20 without it)"}
# An EC2 instance type (family.size, e.g. g4dn.xlarge); "" on a step: Fargate, whatever the algorithm suggests.
INSTANCE_TYPE_PATTERN = r"\A([a-z][a-z0-9-]*\.[a-z0-9]+)?\Z"
INSTANCE_TYPE_SCHEMA = {"type": "string", "pattern": INSTANCE_TYPE_PATTERN, "maxLength": 64,
                        "description": "an EC2 instance type such as g4dn.xlarge (or \"\" for Fargate)"}
# Graviton families: a digit, then a 'g' among the letters before the size (c7g, m6gd, t4g, g5g).
GRAVITON = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")
# A step that asks for one GPU and no instance type: the smallest NVIDIA GPU instance ECS supports well.
DEFAULT_GPU_INSTANCE_TYPE = "g4dn.xlarge"
# A job's time limit: SQS extends a message's visibility to at most 12 h from its first receive
# (contract.MAX_VISIBILITY_SECONDS), so a longer job would lose its message and run twice.
# A drop-run that waits longer than a week for its next file is a mistake, not a batch.
MAX_QUIET_SECONDS = 7 * 24 * 3600
TIMEOUT_SCHEMA = {"type": "integer", "minimum": 1, "maximum": contract.MAX_VISIBILITY_SECONDS,
                  "description": "a number of seconds from 1 to 43200 (SQS holds a message at most 12 h)"}
RUN_QUIET_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_QUIET_SECONDS,
                    "description": "a number of seconds from 1 to 604800 (a week)"}
# How far a step's memory grows for a job that ran out of it (engine/grow.py): the step's memory
# turns growing off; unset: a few times the memory, within what the step's compute offers.
MAX_MEMORY_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 122880, "description": "a number of MiB from 1 to 122880"}
GPU_SCHEMA = {"type": "integer", "minimum": 0, "maximum": 8, "description": "a number of GPUs from 0 to 8"}
# A Fargate task's public IP; unset: one only where the subnets route to an internet gateway (engine/network.py).
PUBLIC_IP_SCHEMA = {"type": "boolean"}
# Cost allocation tags (AWS's tagging rules, common to every service yunpipe tags): at most 50 per
# resource, of which yunpipe's own take up to 3 (yunpipe:pipeline, yunpipe:step, and yunpipe:spec on
# task definitions, whose tags its tasks carry); keys of 1-128 and values of 0-256 Unicode letters,
# digits, spaces and _ . : / = + - @; no aws: prefix (AWS's) nor yunpipe: (yunpipe's own).
MAX_TAGS_PER_RESOURCE = 50
OWN_TAGS = 3
MAX_TAGS = MAX_TAGS_PER_RESOURCE - OWN_TAGS
TAG_KEY_LENGTH = 128
TAG_VALUE_LENGTH = 256
TAG_PUNCTUATION = "_.:/=+-@"
RESERVED_TAG_PREFIXES = ("aws:", "yunpipe:")
TAGS_SCHEMA = {"type": "object", "additionalProperties": {"type": "string"},
               "description": "an object of tag names to text values, e.g. {\"grant\": \"R01-123\"}"}
# The fields of a step that only make sense in a graph.
GRAPH_ONLY = ("id", "after", "filter_prefix", "filter_suffix", "gather", "marker")


@dataclass(frozen=True)
class StepSpec:
    """One step: an algorithm, its variables and its own settings (each overrides the
    algorithm's or the workflow's)."""

    reference: str = spec_field("name", {"type": "string", "pattern": STEP_REFERENCE_PATTERN, "maxLength": 1024,
                                         "description": "NAME, NAME@VERSION or s3://BUCKET/PREFIX/NAME[@VERSION]"},
                                required=True)
    # The step's name in resource names and `after`; the algorithm's name when not given.
    id: str = spec_field("id", {"type": "string", "pattern": STEP_ID_PATTERN,
                                "description": "a step id of lower-case letters, digits and '-' (at most 24 characters)"},
                         "")
    after: tuple[str, ...] = spec_field("after", {"type": "array", "items": {"type": "string"},
                                                  "description": "a list of step ids"}, (), convert=tuple)
    variables: Mapping[str, Any] = spec_field("variables", {"type": "object"}, default_factory=dict, convert=dict)
    concurrency: int = spec_field("concurrency", {"type": "integer", "minimum": 1, "maximum": 100,
                                                  "description": "a number of tasks from 1 to 100"},
                                  contract.DEFAULT_CONCURRENCY)
    # Tasks are started for the backlog: one per this many waiting files, within `concurrency`.
    files_per_task: int = spec_field("files_per_task", {"type": "integer", "minimum": 1, "maximum": 1000,
                                                        "description": "a number of files from 1 to 1000"},
                                     contract.DEFAULT_FILES_PER_TASK)
    # FARGATE_SPOT: interruptible, cheaper Fargate capacity (launch_type FARGATE only).
    capacity: str = spec_field("capacity", {"type": "string", "enum": list(contract.FARGATE_CAPACITY_PROVIDERS)},
                               "FARGATE")
    # Run on EC2 instances of this type (an ECS capacity provider scaled from zero, docs/compute.md)
    # instead of Fargate; None: the algorithm's own instance_type.
    instance_type: str | None = spec_field("instance_type", INSTANCE_TYPE_SCHEMA, None)
    # GPUs per task (EC2 only); None: the algorithm's own gpu.
    gpu: int | None = spec_field("gpu", GPU_SCHEMA, None)
    max_receive_count: int = spec_field("max_receive_count", {"type": "integer", "minimum": 1, "maximum": 1000,
                                                              "description": "a number of tries from 1 to 1000"},
                                        contract.DEFAULT_MAX_RECEIVE_COUNT)
    ephemeral_storage_gib: int | None = spec_field("ephemeral_storage_gib", EPHEMERAL_STORAGE_SCHEMA, None)
    cpu: float | None = spec_field("cpu", {"type": "number", "exclusiveMinimum": 0, "maximum": 16,
                                           "description": "a number of vCPUs greater than 0, at most 16"}, None)
    memory: int | None = spec_field("memory", {"type": "integer", "minimum": 1, "maximum": 122880,
                                               "description": "a number of MiB from 1 to 122880"}, None)
    # Jobs one task runs at once; None: one per vCPU, or as many as the task's memory holds at
    # the step's memory (at most 4), whichever is more (model.default_parallelism).
    # A job out of memory is tried again at double the memory, up to this (MiB); None: the workflow's.
    max_memory: int | None = spec_field("max_memory", MAX_MEMORY_SCHEMA, None)
    parallelism: int | None = spec_field("parallelism", {"type": "integer", "minimum": 1, "maximum": 64,
                                                         "description": "a number of jobs from 1 to 64"}, None)
    timeout_seconds: int | None = spec_field("timeout_seconds", TIMEOUT_SCHEMA, None)
    # Run every file, even one whose results are there with matching provenance (the worker
    # skips those otherwise).
    force: bool = spec_field("force", {"type": "boolean"}, False)
    filter_prefix: str = spec_field("filter.prefix", {"type": "string"}, "")
    filter_suffix: str = spec_field("filter.suffix", {"type": "string"}, "")
    # A gather step runs one job over everything its input holds: on `yunpipe submit --gather`,
    # or when an object whose key ends with `marker` arrives.
    gather: bool = spec_field("gather", {"type": "boolean"}, False)
    marker: str = spec_field("marker", {"type": "string", "minLength": 1, "description": "a non-empty key suffix"}, "")
    # The workflow's own, else as the subnets route (Fargate steps only).
    assign_public_ip: bool | None = spec_field("assign_public_ip", PUBLIC_IP_SCHEMA, None)
    # Read by parse_workflow (yunpipe.specs.secrets): they replace the algorithm's of the same name.
    secrets: tuple[Secret, ...] = spec_field("secrets", SECRETS_SCHEMA, ())

    @property
    def algorithm_name(self) -> str:
        # Also when a shared registry's URL comes first (s3://B/P/NAME@V).
        return self.reference.split("@", 1)[0].rsplit("/", 1)[-1]

    @property
    def step_id(self) -> str:
        return self.id or self.algorithm_name


# 0.0.3 workflow files give each algorithm a "port" list; the algorithm's own ports apply.
CHAIN_STEP_SCHEMA = object_schema(StepSpec, extra={"port": {"type": "array"}},
                                  exclude=[f for f in GRAPH_ONLY if f != "id"])
GRAPH_STEP_SCHEMA = object_schema(StepSpec)


@dataclass(frozen=True)
class WorkflowSpec:
    source: str
    name: str
    input_bucket: str = spec_field("input_s3_name", {"type": "string"}, required=True)
    output_bucket: str = spec_field("output_s3_name", {"type": "string"}, required=True)
    process_type: str = spec_field("process.type", {"type": "string", "enum": list(PROCESS_TYPES)}, required=True)
    steps: tuple[StepSpec, ...] = ()
    declared_name: str = spec_field(
        "name", {"type": "string", "pattern": PIPELINE_NAME_PATTERN,
                 "description": "a pipeline name of lower-case letters, digits and '-' (at most 24 characters)"}, "")
    region: str | None = spec_field("region", {"type": "string", "pattern": contract.REGION_PATTERN, "maxLength": 32,
                                               "description": "an AWS region such as us-east-1"}, None)
    account_id: str = spec_field("account_id", {"type": ["string", "integer"]}, "", convert=str)
    key_pair: str = spec_field("key_pair", {"type": "string"}, "")
    launch_type: str = spec_field("launch_type", {"type": "string", "enum": list(contract.LAUNCH_TYPES)}, "FARGATE")
    subnets: tuple[str, ...] = spec_field(
        "subnets", {"type": "array", "items": {"type": "string", "pattern": r"\Asubnet-[0-9a-zA-Z]+\Z",
                                                   "description": "a subnet id"}},
        (), convert=tuple)
    security_groups: tuple[str, ...] = spec_field(
        "security_groups",
        {"type": "array", "items": {"type": "string", "pattern": r"\Asg-[0-9a-zA-Z]+\Z", "description": "a security group id"}},
        (), convert=tuple)
    # The user's uploads a pipeline takes (a graph step may set its own).
    filter_prefix: str = spec_field("filter.prefix", {"type": "string"}, "")
    filter_suffix: str = spec_field("filter.suffix", {"type": "string"}, "")
    log_retention_days: int = spec_field("log_retention_days", {"type": "integer", "enum": LOG_RETENTION_DAYS}, 30)
    idle_seconds: int = spec_field("idle_seconds", {"type": "integer", "minimum": 1, "maximum": 3600,
                                                    "description": "seconds from 1 to 3600"},
                                   contract.DEFAULT_IDLE_SECONDS)
    visibility_timeout_seconds: int = spec_field(
        "visibility_timeout_seconds", {"type": "integer", "minimum": 5, "maximum": contract.MAX_VISIBILITY_SECONDS,
                                       "description": "seconds from 5 to 43200"}, contract.DEFAULT_VISIBILITY_SECONDS)
    ephemeral_storage_gib: int | None = spec_field("ephemeral_storage_gib", EPHEMERAL_STORAGE_SCHEMA, None)
    assign_public_ip: bool | None = spec_field("assign_public_ip", PUBLIC_IP_SCHEMA, None)
    # Every step's max_memory unless it sets its own (None: engine/grow.py's default).
    max_memory: int | None = spec_field("max_memory", MAX_MEMORY_SCHEMA, None)
    # Who hears of the pipeline's runs (yunpipe.specs.notify): the subscribers of its SNS topic.
    notify: tuple[Subscriber, ...] = spec_field("notify", NOTIFY_SCHEMA, (), convert=tuple)
    # Every job and task recorded in the reports bucket, and runs (yunpipe/runtime/accounting).
    accounting: bool = spec_field("accounting", {"type": "boolean"}, True)
    # A drop-run (files other S3 clients drop) closes once no new file came for this long.
    run_quiet_seconds: int = spec_field("run_quiet_seconds", RUN_QUIET_SCHEMA, contract.DEFAULT_QUIET_SECONDS)
    # The user's own tags, on every resource and task (cost allocation: a grant, a project).
    tags: Mapping[str, str] = spec_field("tags", TAGS_SCHEMA, default_factory=dict, convert=dict)

    @property
    def steps_field(self) -> str:
        """Where the steps sit in the file, for errors."""
        return "process.steps" if self.process_type == "graph" else "process.algorithms"


WORKFLOW_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **object_schema(WorkflowSpec, extra={
        "process.algorithms": {"type": "array", "minItems": 1, "items": CHAIN_STEP_SCHEMA,
                               "description": "a list of at least one algorithm"},
        "process.steps": {"type": "array", "minItems": 1, "items": GRAPH_STEP_SCHEMA,
                          "description": "a list of at least one step"},
    }),
}


def bucket_name_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name, or None (the AWS naming rules)."""
    if not 3 <= len(name) <= 63:
        return "3 to 63 characters"
    if not BUCKET_CHARS.match(name):
        return "lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "no '..', '.-' or '-.'"
    try:
        ipaddress.IPv4Address(name)
        return "a name that is not an IP address"
    except ValueError:
        pass
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return "no reserved prefix (xn--, sthree-) or suffix (-s3alias, --ol-s3)"
    return None


def derive_pipeline_name(input_bucket: str) -> str:
    """The pipeline's name when the workflow gives none: a slug of the input bucket."""
    slug = re.sub(r"[^a-z0-9-]+", "-", input_bucket.lower()).strip("-")
    return slug[:24].rstrip("-") or "pipeline"


def _steps_document(document: Mapping[str, Any], source: str) -> tuple[str, list]:
    """(field, list of step documents): `algorithms` for a chain, `steps` for a graph."""
    process = document["process"]
    wanted, other = ("steps", "algorithms") if process["type"] == "graph" else ("algorithms", "steps")
    if other in process:
        raise InputError(source, f"process.{other}", f"expected process.{wanted} for process type {process['type']}")
    if wanted not in process:
        raise InputError(source, f"process.{wanted}", f"missing required field (process type {process['type']})")
    return f"process.{wanted}", process[wanted]


def parse_workflow(document: Any, source: str) -> WorkflowSpec:
    validate(document, WORKFLOW_SCHEMA, source)
    for key in ("input_s3_name", "output_s3_name"):
        problem = bucket_name_problem(document[key])
        if problem:
            raise InputError(source, key, f"expected a valid S3 bucket name ({problem}), got {json.dumps(document[key])}")
    if document["input_s3_name"] == document["output_s3_name"]:
        raise InputError(source, "output_s3_name", "expected a bucket other than input_s3_name (results would trigger the pipeline again)")
    where, items = _steps_document(document, source)
    if document["process"]["type"] == "single_run" and len(items) != 1:
        raise InputError(source, where, f"expected exactly one algorithm for single_run, got {len(items)}")
    values = read_fields(WorkflowSpec, document)
    values["notify"] = parse_notify(values.get("notify", ()), source)
    steps = tuple(StepSpec(**read_fields(StepSpec, item, exclude=["secrets"]),
                           secrets=parse_secrets(item.get("secrets", []), source, f"{where}[{index}].secrets"))
                  for index, item in enumerate(items))
    if document["process"]["type"] != "graph":
        steps = number_repeats(steps)
    spec = WorkflowSpec(source=source, name=values.get("declared_name") or derive_pipeline_name(document["input_s3_name"]),
                        steps=steps, **values)
    check_tags(spec.source, spec.tags)
    check_step_ids(spec)
    check_capacity(spec)
    if spec.process_type == "graph":
        check_graph(spec)
    return spec


def _tag_text_problem(text: str) -> str | None:
    bad = [c for c in text if unicodedata.category(c)[0] not in "LNZ" and c not in TAG_PUNCTUATION]
    if bad:
        return f"only letters, digits, spaces and {' '.join(TAG_PUNCTUATION)} (not {json.dumps(bad[0])})"
    return None


def check_tags(source: str, tags: Mapping[str, str]) -> None:
    """The workflow's tags within what every service yunpipe tags accepts (AWS's tagging rules),
    with room left for yunpipe's own; IAM compares keys without case, so roles refuse two keys
    that differ only in case."""
    if len(tags) > MAX_TAGS:
        raise InputError(source, "tags", f"expected at most {MAX_TAGS} tags (AWS allows {MAX_TAGS_PER_RESOURCE} per "
                                         f"resource and yunpipe's own take {OWN_TAGS}), got {len(tags)}")
    seen: dict[str, str] = {}
    for key, value in tags.items():
        field = f"tags.{key}"
        if not 1 <= len(key) <= TAG_KEY_LENGTH:
            raise InputError(source, field, f"expected a tag key of 1 to {TAG_KEY_LENGTH} characters, got {len(key)}")
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            raise InputError(source, field, "expected a key without the prefix aws: (AWS's) or yunpipe: (yunpipe's own "
                                            "tags: yunpipe:pipeline, yunpipe:step)")
        problem = _tag_text_problem(key)
        if problem:
            raise InputError(source, field, f"expected a tag key of {problem}")
        if len(value) > TAG_VALUE_LENGTH:
            raise InputError(source, field, f"expected a tag value of at most {TAG_VALUE_LENGTH} characters, "
                                            f"got {len(value)}")
        problem = _tag_text_problem(value)
        if problem:
            raise InputError(source, field, f"expected a tag value of {problem}")
        if key.lower() in seen:
            raise InputError(source, field, f"expected tag keys that differ in more than case: IAM takes '{key}' and "
                                            f"'{seen[key.lower()]}' for one key")
        seen[key.lower()] = key


def number_repeats(steps: tuple[StepSpec, ...]) -> tuple[StepSpec, ...]:
    """A chain may name one algorithm more than once (the same tool at two settings; yunpipe 0.0.3
    accepted that, and its files have no ids): each step without an `id` gets one here.

    In file order, such a step's id is its algorithm's name (as it always was), unless an explicit
    `id` anywhere in the chain or an earlier step already has that name; then it is NAME-2, NAME-3,
    ...: the smallest number >= 2 whose id is none of the chain's explicit ids, none of its
    algorithms' names and none given so far. So a generated id never takes an id the file gives
    nor the name another step would get (a chain "upper, upper, upper-2" is upper, upper-3,
    upper-2), and the same file gets the same ids, hence the same resources, on every redeploy.
    Explicit ids are kept as written and must be unique (check_step_ids). A graph is not numbered:
    `after` names its steps by id, so there a repeated algorithm needs an explicit one."""
    explicit = {step.id for step in steps if step.id}
    names = {step.algorithm_name for step in steps}
    given: set[str] = set()
    numbered = []
    for step in steps:
        if step.id or (step.algorithm_name not in explicit and step.algorithm_name not in given):
            given.add(step.step_id)
            numbered.append(step)
            continue
        number = 2
        while f"{step.algorithm_name}-{number}" in explicit | names | given:
            number += 1
        given.add(f"{step.algorithm_name}-{number}")
        numbered.append(replace(step, id=f"{step.algorithm_name}-{number}"))
    return tuple(numbered)


def check_step_ids(spec: WorkflowSpec) -> None:
    """Each step's id (its algorithm's name unless given) is unique: resources are named by it."""
    seen: dict[str, int] = {}
    for index, step in enumerate(spec.steps):
        field = f"{spec.steps_field}[{index}].{'id' if step.id else 'name'}"
        if step.step_id in seen:
            hint = "" if step.id else ": give the repeated algorithm an \"id\""
            raise InputError(spec.source, field, f"expected a step id used once, '{step.step_id}' is already "
                                                 f"{spec.steps_field}[{seen[step.step_id]}]{hint}")
        seen[step.step_id] = index


def check_capacity(spec: WorkflowSpec) -> None:
    """Fargate Spot is Fargate capacity: a step asks for it only when the pipeline runs on Fargate,
    and not together with an instance type or GPUs (EC2 capacity)."""
    for index, step in enumerate(spec.steps):
        where = f"{spec.steps_field}[{index}]"
        if step.capacity != "FARGATE" and spec.launch_type != "FARGATE":
            raise InputError(spec.source, f"{where}.capacity",
                             f"expected FARGATE (or no capacity) with launch_type {spec.launch_type}: "
                             f"{step.capacity} runs Fargate tasks only")
        if step.capacity != "FARGATE" and (step.instance_type or step.gpu):
            raise InputError(spec.source, f"{where}.capacity",
                             f"expected no capacity with {'instance_type' if step.instance_type else 'gpu'}: "
                             f"{step.capacity} is Fargate capacity, an instance type or GPUs run on EC2")
        check_instance(spec.source, where, step.instance_type, step.gpu)


def check_instance(source: str, where: str, instance_type: str | None, gpu: int | None) -> None:
    """What ECS can run: x86-64 instances (the ECS-optimized AMIs yunpipe launches and the
    images it wraps are x86-64), GPUs on NVIDIA GPU instances (families g and p). `where` is the
    path of the object holding the fields ("" at the top of an algorithm file)."""
    prefix = f"{where}." if where else ""
    if instance_type and GRAVITON.match(instance_type):
        raise InputError(source, f"{prefix}instance_type",
                         f"expected an x86-64 instance type, got Graviton (arm64) {instance_type}: "
                         "yunpipe's images and AMIs are x86-64")
    if gpu and instance_type and not instance_type.startswith(("g", "p")):
        raise InputError(source, f"{prefix}gpu",
                         f"expected a GPU instance type (families g and p, e.g. g4dn.xlarge) for {gpu} GPU(s), "
                         f"got {instance_type}")


def instance_for(gpu: int, instance_type: str) -> str | None:
    """The instance type a step runs on: its own, else DEFAULT_GPU_INSTANCE_TYPE for one GPU;
    None when it asks for more GPUs than that has and names no instance type."""
    if instance_type or not gpu:
        return instance_type
    return DEFAULT_GPU_INSTANCE_TYPE if gpu == 1 else None


def check_graph(spec: WorkflowSpec) -> None:
    """`after` names other steps, each once; no cycle; a gather step reads one input; a marker
    belongs to a gather step."""
    index = {step.step_id: i for i, step in enumerate(spec.steps)}
    for i, step in enumerate(spec.steps):
        where = f"process.steps[{i}]"
        for j, upstream in enumerate(step.after):
            if upstream not in index:
                known = ", ".join(list(index)[:10]) + (", ..." if len(index) > 10 else "")
                raise InputError(spec.source, f"{where}.after[{j}]",
                                 f"expected the id of another step ({known}), got '{upstream}'")
            if upstream == step.step_id:
                raise InputError(spec.source, f"{where}.after[{j}]", "expected another step, not the step itself")
            if step.after.index(upstream) != j:
                raise InputError(spec.source, f"{where}.after[{j}]",
                                 f"expected each step once, '{upstream}' would feed the step twice with the same keys")
        if step.gather and len(step.after) > 1:
            raise InputError(spec.source, f"{where}.after", "expected at most one step before a gather step")
        if step.marker and not step.gather:
            raise InputError(spec.source, f"{where}.marker", "expected a marker only on a gather step (\"gather\": true)")
    cycle = find_cycle(spec.steps)
    if cycle:
        i = index[cycle[0]]
        shown = cycle if len(cycle) <= 10 else [*cycle[:5], f"... ({len(cycle) - 6} more)", cycle[-1]]
        raise InputError(spec.source, f"process.steps[{i}].after",
                         f"expected steps without a cycle, got {' -> '.join([*shown, cycle[0]])}")


def find_cycle(steps: tuple[StepSpec, ...]) -> list[str]:
    """One cycle of `after` edges as a list of step ids, or [] (depth-first search, with a stack
    of its own: a chain of thousands of steps is no deeper for Python than one step)."""
    after = {step.step_id: step.after for step in steps}
    state: dict[str, str] = {}
    for root in after:
        if root in state:
            continue
        state[root] = "open"
        path, pending = [root], [iter(after[root])]
        while pending:
            for upstream in pending[-1]:
                if state.get(upstream) == "open":
                    return path[path.index(upstream):]
                if upstream not in state:
                    state[upstream] = "open"
                    path.append(upstream)
                    pending.append(iter(after.get(upstream, ())))
                    break
            else:
                state[path.pop()] = "done"
                pending.pop()
    return []


def load_workflow(path: str | Path) -> WorkflowSpec:
    return parse_workflow(load_document(path), str(path))
