"""Where each step of a pipeline reads and writes: the workflow's graph laid out on buckets.

A chain is the graph in which each step comes after the one before it. A step with no `after`
reads the pipeline's input bucket; a step after one step reads that step's results; a step
after several (a join) reads each of theirs and runs once per key they all hold. A step that
no other step comes after writes into the output bucket, under `<step id>/` when there are
several such steps; any other step writes into a bucket of its own.
"""
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property

from yunpipe.engine.state import PipelineSummary
from yunpipe.resolve import ResolvedWorkflow

INPUT = "input"  # the source name of the pipeline's input bucket


@dataclass(frozen=True)
class Source:
    """One bucket a step reads: the pipeline's input (step INPUT) or an earlier step's results."""

    step: str
    bucket: str


@dataclass(frozen=True)
class Placement:
    step: str
    algorithm: str  # NAME@VERSION
    sources: tuple[Source, ...]
    output_bucket: str
    output_prefix: str
    # The key filter on every bucket the step reads.
    prefix: str
    suffix: str
    gather: bool
    marker: str

    @property
    def after(self) -> tuple[str, ...]:
        return tuple(s.step for s in self.sources if s.step != INPUT)

    @property
    def join(self) -> bool:
        return len(self.sources) > 1

    @property
    def triggered(self) -> bool:
        """Whether new objects start the step (a gather step without a marker waits for submit)."""
        return not self.gather or bool(self.marker)


@dataclass(frozen=True)
class Layout:
    input_bucket: str
    output_bucket: str
    steps: tuple[Placement, ...]

    @cached_property
    def _readers(self) -> dict[str, tuple[Placement, ...]]:
        # Indexed once: compiling asks for every bucket's readers, and a graph may have a thousand steps.
        readers: dict[str, list[Placement]] = {}
        for p in self.steps:
            for bucket in dict.fromkeys(s.bucket for s in p.sources):
                readers.setdefault(bucket, []).append(p)
        return {bucket: tuple(found) for bucket, found in readers.items()}

    def readers(self, bucket: str) -> tuple[Placement, ...]:
        return self._readers.get(bucket, ())

    def shared(self, bucket: str) -> bool:
        """Whether several steps are told of the bucket's new objects (S3 then sends its events
        to EventBridge); a gather step without a marker is told nothing."""
        return len([p for p in self.readers(bucket) if p.triggered]) > 1

    @cached_property
    def _by_step(self) -> dict[str, Placement]:
        return {p.step: p for p in self.steps}

    def step(self, name: str) -> Placement:
        return self._by_step[name]

    @property
    def intermediate_buckets(self) -> tuple[str, ...]:
        return tuple(p.output_bucket for p in self.steps if p.output_bucket != self.output_bucket)

    def to_document(self) -> dict:
        return asdict(self)

    @classmethod
    def from_document(cls, document: dict) -> "Layout":
        steps = tuple(Placement(**{**p, "sources": tuple(Source(**s) for s in p["sources"])})
                      for p in document["steps"])
        return cls(document["input_bucket"], document["output_bucket"], steps)


def upstream(workflow: ResolvedWorkflow) -> dict[str, tuple[str, ...]]:
    """Each step's `after`: given in a graph, the step before it in a chain."""
    steps = workflow.steps
    if workflow.spec.process_type == "graph":
        return {s.name: s.spec.after for s in steps}
    return {s.name: (steps[i - 1].name,) if i else () for i, s in enumerate(steps)}


def lay_out(workflow: ResolvedWorkflow, intermediate_bucket: Callable[[str], str]) -> Layout:
    """The layout; `intermediate_bucket(step)` names the bucket a step writes for later steps."""
    spec = workflow.spec
    after = upstream(workflow)
    feeding = {u for names in after.values() for u in names}
    sinks = [s.name for s in workflow.steps if s.name not in feeding]
    outputs = {s.name: intermediate_bucket(s.name) if s.name in feeding else spec.output_bucket for s in workflow.steps}
    placements = []
    for step in workflow.steps:
        own = step.spec
        sources = tuple(Source(u, outputs[u]) for u in after[step.name]) or (Source(INPUT, spec.input_bucket),)
        # The workflow's filter selects the user's uploads; a step may narrow what it takes.
        root = not after[step.name]
        prefix = own.filter_prefix or (spec.filter_prefix if root else "")
        suffix = own.marker or own.filter_suffix or (spec.filter_suffix if root else "")
        placements.append(Placement(
            step=step.name, algorithm=step.record.reference, sources=sources, output_bucket=outputs[step.name],
            output_prefix=f"{step.name}/" if step.name in sinks and len(sinks) > 1 else "",
            prefix=prefix, suffix=suffix, gather=own.gather, marker=own.marker))
    return Layout(spec.input_bucket, spec.output_bucket, tuple(placements))


def chain_of(summary: PipelineSummary) -> Layout:
    """The layout of a pipeline whose summary predates recorded layouts: always a chain (its
    algorithms' versions were not recorded)."""
    steps = summary.steps
    return Layout(summary.input_bucket, summary.output_bucket, tuple(
        Placement(step=s.name, algorithm="", sources=(Source(steps[i - 1].name if i else INPUT, s.input_bucket),),
                  output_bucket=s.output_bucket, output_prefix="", prefix="", suffix="", gather=False, marker="")
        for i, s in enumerate(steps)))


def describe(layout: Layout) -> list[str]:
    """The graph as text, one line per step: what it reads, what it runs, where it writes."""
    lines = []
    for p in layout.steps:
        reads = " + ".join(f"{s.bucket}" + (f" ({s.step})" if s.step != INPUT else "") for s in p.sources)
        what = "join on the key of " if p.join else ("gather all of " if p.gather else "")
        trigger = f", when a key ending in '{p.marker}' arrives" if p.marker else (
            ", on `yunpipe submit --gather`" if p.gather else "")
        filters = "".join(f" {name} '{value}'" for name, value in (("prefix", p.prefix), ("suffix", p.suffix))
                          if value and not p.marker)
        algorithm = f" [{p.algorithm}]" if p.algorithm else ""
        lines.append(f"{p.step}{algorithm}: {what}{reads}{filters}{trigger} -> "
                     f"s3://{p.output_bucket}/{p.output_prefix}")
    return lines


def dot(layout: Layout, name: str) -> str:
    """The graph in Graphviz DOT: buckets as boxes, steps as ellipses."""
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph {quoted(name)} {{", "  rankdir=LR;"]
    buckets = [layout.input_bucket, *layout.intermediate_buckets, layout.output_bucket]
    for bucket in dict.fromkeys(buckets):
        lines.append(f"  {quoted('s3://' + bucket)} [shape=box];")
    for p in layout.steps:
        notes = ["(join)"] * p.join + ["(gather)"] * p.gather
        # A backslash and "n" make a line break inside a DOT label.
        label = "\\n".join(quoted(part)[1:-1] for part in [p.step, p.algorithm, *notes])
        lines.append(f'  {quoted(p.step)} [label="{label}"];')
        for source in p.sources:
            lines.append(f"  {quoted('s3://' + source.bucket)} -> {quoted(p.step)};")
        lines.append(f"  {quoted(p.step)} -> {quoted('s3://' + p.output_bucket)}"
                     + (f" [label={quoted(p.output_prefix)}]" if p.output_prefix else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"
