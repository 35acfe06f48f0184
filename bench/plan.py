"""Planning benchmark: a graph of N steps (a chain, each step after the one before) read,
checked, resolved, compiled and planned, timed phase by phase, without AWS.

    .venv/bin/python bench/plan.py [--steps 1000] [--cycle 1500]

The planner runs offline (as `setup-pipe --dry-run` does when AWS cannot be reached): it
reads nothing, so the figure is yunpipe's own work. On AWS, planning adds about a dozen
read calls per step (bench/README.md). `--cycle` times the refusal of a graph whose steps
form one cycle of that many (the cycle check once recursed and hit RecursionError).
Needs no Docker. Figures go to stdout and bench/results/plan.json.
"""
import argparse
import json
import sys
import time

import benchlib

from yunpipe.aws.reader import Reader
from yunpipe.engine import compiler
from yunpipe.engine.planner import Planner
from yunpipe.engine.target import Target
from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.specs.algorithm import load_algorithm
from yunpipe.specs.workflow import load_workflow

EXAMPLE = benchlib.REPO / "examples" / "change123" / "change123-s3.json"


def graph(steps: int, cycle: bool = False) -> dict:
    """A chain of `steps` graph steps; with `cycle`, the first comes after the last."""
    items = [{"name": "change123-s3", "id": f"s{i}", "variables": {"TEST_ENV": "x"},
              **({"after": [f"s{i - 1}"]} if i else {})} for i in range(steps)]
    if cycle:
        items[0]["after"] = [f"s{steps - 1}"]
    return {"name": "bench-plan", "input_s3_name": "bench-plan-in", "output_s3_name": "bench-plan-out",
            "process": {"type": "graph", "steps": items}}


def timed(phases: dict, name: str, work):
    start = time.perf_counter()
    result = work()
    phases[name] = round(time.perf_counter() - start, 3)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--cycle", type=int, default=1500)
    args = parser.parse_args()
    with benchlib.scratch_home() as home:
        registry = AlgorithmRegistry()
        registry.record(load_algorithm(EXAMPLE), "user/change123-s3:1")
        path = home / "workflow.json"
        path.write_text(json.dumps(graph(args.steps)))
        phases: dict = {}
        spec = timed(phases, "read and check", lambda: load_workflow(path))
        workflow = timed(phases, "resolve", lambda: resolve_workflow(spec, registry))
        target = Target("123456789012", "us-east-1", ("subnet-0123456789abcdef0",), ("sg-0123456789abcdef0",))
        model = timed(phases, "compile", lambda: compiler.build_model(workflow, target))
        plan = timed(phases, "plan (offline)", lambda: Planner(Reader(None, offline=True), ()).plan(model))  # type: ignore[arg-type]
        phases["total"] = round(sum(phases.values()), 3)
        path.write_text(json.dumps(graph(args.cycle, cycle=True)))
        start = time.perf_counter()
        try:
            load_workflow(path)
            refused = "accepted"
        except InputError as error:
            refused = error.expected[:60]
        cycle = {"steps": args.cycle, "seconds": round(time.perf_counter() - start, 3), "answer": refused}
    figures = {"steps": args.steps, "seconds": phases, "calls": len(plan.calls), "cycle": cycle}
    print(json.dumps(figures, indent=2))
    benchlib.write_results("plan", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
