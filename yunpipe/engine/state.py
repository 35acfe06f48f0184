"""A pipeline's state: what yunpipe created, recorded as it goes, so a half-done setup can be
resumed or cleaned up. File: <YUNPIPE_HOME>/pipelines/<name>.json (schema-versioned JSON).
summary["location"] (where the pipeline is deployed, yunpipe.aws.location) is an optional
field of schema 1: files written before it existed still load, and are reached by flags. So is
"workflow" (the workflow setup-pipe last applied, each algorithm pinned to its version, for
`yunpipe export PIPELINE`): {"source": its file, "document": its content, "use_user_credential": -uu}.
"""
import difflib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from yunpipe import paths
from yunpipe.errors import InputError, NotFoundError, YunpipeError

SCHEMA_VERSION = 1


def state_path(pipeline: str) -> Path:
    return paths.pipelines_dir() / f"{pipeline}.json"


def known_pipelines() -> list[str]:
    folder = paths.pipelines_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


@dataclass(frozen=True)
class StepSummary:
    """One step's resource names, as status and logs look them up."""
    name: str
    input_bucket: str
    output_bucket: str
    queue: str
    dead_letter_queue: str
    task_family: str
    function: str
    started_by: str
    # The launcher's on-failure destination; "" in a summary written before it existed.
    failed_events_queue: str = ""
    # The queues of its larger sizes, for jobs out of memory (engine/grow.py), smallest first.
    grow_queues: tuple[str, ...] = ()


@dataclass(frozen=True)
class PipelineSummary:
    """What the commands that name a deployed pipeline (status, logs, upload, results, clean-up)
    need to find it: built by PipelineModel.summary, kept in the state file as `summary`.
    `location` is the format yunpipe.aws.location records; None in a summary written
    before yunpipe kept places."""
    pipeline: str
    region: str
    account_id: str
    input_bucket: str
    output_bucket: str
    reports_bucket: str
    log_group: str
    cluster: str
    steps: tuple[StepSummary, ...]
    location: dict | None = None
    # The graph (yunpipe.engine.graph.Layout.to_document()); None in a summary written before
    # yunpipe kept it, which `show` then reads as the chain of its steps.
    layout: dict | None = None

    def to_document(self) -> dict:
        """The state file's `summary` object (schema 1): keys in this order, no "location" or
        "layout" key (nor a step's "failed_events_queue" or "grow_queues") when none is recorded."""
        document = asdict(self)
        document["steps"] = list(document["steps"])
        for step in document["steps"]:
            # As a summary written before they existed has them.
            for optional in ("failed_events_queue", "grow_queues"):
                if not step[optional]:
                    del step[optional]
            if "grow_queues" in step:
                step["grow_queues"] = list(step["grow_queues"])
        for optional in ("location", "layout"):
            if document[optional] is None:
                del document[optional]
        return document

    @classmethod
    def from_document(cls, document: dict) -> "PipelineSummary":
        values = {f.name: document[f.name] for f in fields(cls) if f.name not in ("steps", "location", "layout")}
        steps = tuple(StepSummary(**{f.name: step[f.name] for f in fields(StepSummary)
                                     if f.name not in ("failed_events_queue", "grow_queues")},
                                  failed_events_queue=step.get("failed_events_queue", ""),
                                  grow_queues=tuple(step.get("grow_queues", ())))
                      for step in document["steps"])
        return cls(**values, steps=steps, location=document.get("location"), layout=document.get("layout"))


class PipelineState:
    """`resources` are [kind, key] pairs of what yunpipe created; `summary` describes the
    pipeline for the commands that read it (see PipelineModel.summary), None until recorded."""

    def __init__(self, pipeline: str, summary: PipelineSummary | None = None, resources: list | None = None,
                 workflow: dict | None = None):
        self.pipeline = pipeline
        self.summary = summary
        self.resources: list[tuple[str, str]] = [tuple(r) for r in resources or []]
        self.workflow = workflow

    @classmethod
    def load(cls, pipeline: str) -> "PipelineState":
        """The recorded state, or an empty one when there is no file."""
        path = state_path(pipeline)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(pipeline)
        except json.JSONDecodeError as error:
            raise YunpipeError(f"{path} is not valid JSON ({error}); remove it and run clean-up {pipeline}") from None
        if document.get("schema_version") != SCHEMA_VERSION:
            raise YunpipeError(f"{path}: schema_version {document.get('schema_version')} is not {SCHEMA_VERSION}; "
                               "this yunpipe cannot read it")
        summary = document.get("summary")
        try:
            summary = PipelineSummary.from_document(summary) if summary else None
        except (KeyError, TypeError) as error:
            raise YunpipeError(f"{path}: its summary is not one yunpipe records ({type(error).__name__}: {error}); "
                               f"remove it and run clean-up {pipeline}") from None
        return cls(pipeline, summary, document.get("resources"), document.get("workflow"))

    @property
    def exists(self) -> bool:
        return state_path(self.pipeline).exists()

    def keys(self) -> set[tuple[str, str]]:
        return set(self.resources)

    def add(self, kind: str, key: str) -> None:
        if (kind, key) not in self.resources:
            self.resources.append((kind, key))
            self.save()

    def remove(self, kind: str, key: str) -> None:
        if (kind, key) in self.resources:
            self.resources.remove((kind, key))
            self.save()

    def save(self) -> None:
        path = state_path(self.pipeline)
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = self.summary.to_document() if self.summary else {}
        document = {"schema_version": SCHEMA_VERSION, "pipeline": self.pipeline, "summary": summary,
                    "resources": [list(r) for r in self.resources]}
        if self.workflow is not None:
            document["workflow"] = self.workflow
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(document, indent=2))
        # rename is atomic: a crash leaves the old state or the new one, never half a file.
        tmp.replace(path)

    def delete(self) -> None:
        state_path(self.pipeline).unlink(missing_ok=True)


def require_summary(pipeline: str) -> PipelineSummary:
    """The summary of a deployed pipeline, for status, logs, upload and results."""
    state = PipelineState.load(pipeline)
    if not state.summary:
        known = ", ".join(known_pipelines()) or "none"
        close = difflib.get_close_matches(pipeline, known_pipelines(), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise NotFoundError(f"no pipeline '{pipeline}' set up from this machine (known: {known}); {hint}"
                            "run setup-pipe first")
    return state.summary


def find_step(summary: PipelineSummary, name: str | None, verb: str) -> StepSummary:
    """The step --step names; the pipeline's first step when it names none."""
    if name is None:
        return summary.steps[0]
    for step in summary.steps:
        if step.name == name:
            return step
    names = ", ".join(s.name for s in summary.steps)
    raise InputError(verb, "--step", f"expected one of the pipeline's steps ({names}), got '{name}'")
