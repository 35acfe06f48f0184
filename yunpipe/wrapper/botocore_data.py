"""Slimming the botocore data a wrapped image carries, so a task's clients start sooner.

Building the runscript's two clients parses botocore's JSON: the S3 model and endpoint rule set
(2.3 MB once ungzipped, mostly documentation and pretty-printing) and endpoints.json (1.25 MB for
every AWS service). At Fargate's 0.25 vCPU hard limit each 10 ms of CPU is 40 ms of a cold
start (bench/latency.py). Loading is the same with less to parse: the files are rewritten as
compact JSON without the documentation of operations, shapes and endpoint rules,
endpoints.json keeps only the runtime's services, and nothing stays gzipped (botocore tries
NAME.json before NAME.json.gz).
"""
import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

GZIP_SUFFIX = ".gz"


def _undocumented(entry: Any) -> Any:
    """entry (a dict) without its "documentation" string."""
    if isinstance(entry, dict) and isinstance(entry.get("documentation"), str):
        return {key: value for key, value in entry.items() if key != "documentation"}
    return entry


def _strip_service_model(model: dict) -> dict:
    """The service's, operations', shapes' and members' documentation: the places botocore reads
    it with a default (`.get("documentation", "")`). Other blocks (clientContextParams) are kept
    whole, as botocore requires their documentation."""
    model = _undocumented(model)
    model["operations"] = {name: _undocumented(op) for name, op in model.get("operations", {}).items()}
    shapes = {}
    for name, shape in model.get("shapes", {}).items():
        shape = _undocumented(shape)
        if isinstance(shape.get("members"), dict):
            shape["members"] = {member: _undocumented(ref) for member, ref in shape["members"].items()}
        shapes[name] = shape
    model["shapes"] = shapes
    return model


def _strip_rules(rules: list) -> list:
    """An endpoint rule set's rules (nested in tree rules), without their documentation."""
    stripped = []
    for rule in rules:
        rule = _undocumented(rule)
        if isinstance(rule.get("rules"), list):
            rule["rules"] = _strip_rules(rule["rules"])
        stripped.append(rule)
    return stripped


def _strip_rule_set(rule_set: dict) -> dict:
    rule_set = dict(rule_set)
    rule_set["parameters"] = {name: _undocumented(spec) for name, spec in rule_set.get("parameters", {}).items()}
    rule_set["rules"] = _strip_rules(rule_set.get("rules", []))
    return rule_set


def _read(path: Path) -> Any:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.name.endswith(GZIP_SUFFIX) else raw)


def slim(data_dir: Path, services: Iterable[str]) -> None:
    """Rewrite botocore's data folder in place: compact, ungzipped, without documentation, and
    endpoints.json's partitions listing only `services`."""
    services = set(services)
    for path in sorted(data_dir.rglob("*.json*")):
        document = _read(path)
        if path.name.startswith("service-2.json"):
            document = _strip_service_model(document)
        elif path.name.startswith("endpoint-rule-set-1.json"):
            document = _strip_rule_set(document)
        elif path.name == "endpoints.json":
            for partition in document.get("partitions", []):
                partition["services"] = {name: entry for name, entry in partition.get("services", {}).items()
                                         if name in services}
        target = path.with_name(path.name[: -len(GZIP_SUFFIX)]) if path.name.endswith(GZIP_SUFFIX) else path
        target.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
        if target != path:
            path.unlink()
