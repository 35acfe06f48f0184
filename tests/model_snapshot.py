"""The compiled models of the example and test workflows as canonical JSON, so a change to the
engine's shape can show it compiles every workflow exactly as before.

    python tests/model_snapshot.py --write     # record tests/snapshots/models.json
    python tests/model_snapshot.py             # compare, print the first difference, exit 1 on one

tests/test_model_snapshot.py runs the comparison. The launcher's zip is left out (it is the
launcher's source, whose packaging may change shape); its behaviour is tested on its own.
"""
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SNAPSHOT = HERE / "snapshots" / "models.json"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"__type__": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = "<launcher zip>" if f.name == "code" else _plain(getattr(value, f.name))
        for attribute in ("kind", "key"):
            if hasattr(value, attribute):
                out["__" + attribute] = getattr(value, attribute)
        return out
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _workflows() -> dict[str, dict]:
    def steps_workflow(name, kind, steps, **extra):
        key = "steps" if kind == "graph" else "algorithms"
        return {"name": name, "input_s3_name": f"{name}-in-bucket", "output_s3_name": f"{name}-out-bucket",
                "process": {"type": kind, key: steps}, **extra}

    change123 = json.loads((HERE.parent / "examples/change123/workflow.json").read_text())
    return {
        "example-change123": change123,
        "example-change123-named": {**change123, "name": "demo"},
        "sequence": steps_workflow("seq", "sequence_run", [{"name": "upper"}, {"name": "count", "concurrency": 3}]),
        "sequence-ids": steps_workflow("ids", "sequence_run", [{"name": "upper"}, {"id": "upper-again", "name": "upper"}]),
        "graph": steps_workflow("g", "graph", [
            {"id": "upper", "name": "upper"},
            {"id": "count", "name": "count", "filter": {"suffix": ".txt"}},
            {"id": "both", "name": "pair", "after": ["upper", "count"]},
            {"id": "all", "name": "summary", "after": ["both"], "gather": True, "marker": "_DONE"}]),
        "graph-gather-no-marker": steps_workflow("gm", "graph", [
            {"id": "upper", "name": "upper"}, {"id": "all", "name": "summary", "after": ["upper"], "gather": True}]),
        "spot": steps_workflow("spot", "sequence_run", [
            {"name": "upper", "files_per_task": 5, "capacity": "FARGATE_SPOT"}, {"name": "count", "cpu": 2, "memory": 5000}]),
        "gpu": steps_workflow("gpu", "single_run", [
            {"name": "change123-s3", "variables": {"TEST_ENV": "x"}, "gpu": 1}]),
        "instances": steps_workflow("inst", "sequence_run", [
            {"name": "upper", "instance_type": "g5.xlarge", "concurrency": 2},
            {"name": "count", "instance_type": "g5.xlarge", "gpu": 1, "concurrency": 3},
            {"name": "pair", "capacity": "FARGATE_SPOT"}], tags={"grant": "R01-123", "Cost Center": "lab/imaging"}),
        "overrides": steps_workflow("ov", "single_run", [
            {"name": "change123-s3", "variables": {"TEST_ENV": "x"}, "cpu": 0.25, "memory": 512, "parallelism": 2,
             "timeout_seconds": 60, "max_receive_count": 5, "ephemeral_storage_gib": 30}],
            idle_seconds=30, visibility_timeout_seconds=600, log_retention_days=7),
    }


def compile_all() -> dict[str, Any]:
    """Each workflow compiled against a fixed target, in a registry of its own."""
    from yunpipe.engine import compiler
    from yunpipe.engine.target import Target
    from yunpipe.registry import AlgorithmRegistry
    from yunpipe.resolve import resolve_workflow
    from yunpipe.specs.algorithm import parse_algorithm
    from yunpipe.specs.workflow import parse_workflow

    os.environ["YUNPIPE_HOME"] = tempfile.mkdtemp(prefix="yunpipe-snapshot-")
    registry = AlgorithmRegistry()
    base = json.loads((HERE.parent / "examples/change123/change123-s3.json").read_text())
    registry.record(parse_algorithm(base, "change123-s3"), "123456789012.dkr.ecr.us-east-1.amazonaws.com/change123:1")
    for name in ("upper", "count", "pair", "summary"):
        registry.record(parse_algorithm({**base, "name": name, "user_specified_environment_variables": []}, name),
                        f"user/{name}:1")
    target = Target("123456789012", "us-east-1", ("subnet-1", "subnet-2"), ("sg-1",),
                    credentials={"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"})
    models = {}
    for label, document in _workflows().items():
        workflow = resolve_workflow(parse_workflow(document, f"{label}.json"), registry)
        for credential in (False, True):
            model = compiler.build_model(workflow, target, credential)
            models[label + ("+uu" if credential else "")] = {
                "model": _plain(model),
                "resources": [[r.kind, r.key] for r in model.resources()],
                "summary": _plain(model.summary()),
            }
    return models


def main() -> int:
    current = json.loads(json.dumps(compile_all(), sort_keys=True))
    if "--write" in sys.argv:
        SNAPSHOT.write_text(json.dumps(current, sort_keys=True, indent=1) + "\n")
        print(f"wrote {SNAPSHOT} ({len(current)} models)")
        return 0
    recorded = json.loads(SNAPSHOT.read_text())
    if current == recorded:
        print(f"{len(current)} models identical to {SNAPSHOT.name}")
        return 0
    for label in sorted(set(current) | set(recorded)):
        a, b = json.dumps(recorded.get(label), sort_keys=True, indent=1), json.dumps(current.get(label), sort_keys=True, indent=1)
        if a != b:
            import difflib
            print(f"{label} differs:")
            print("\n".join(list(difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm=""))[:60]))
            return 1
    return 1


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
