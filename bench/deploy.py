"""Deploy benchmark: setup-pipe, a no-op redeploy and clean-up --purge of 1-, 3- and 10-step
sequences on the local cloud, timed, with the AWS API calls each one makes.

    .venv/bin/python bench/deploy.py

The ten steps are one wrapped image (examples/uppercase) recorded under ten algorithm
names, bench-step-01..10: deploying never runs a task, so the image only has to exist.
Calls are counted with yunpipe.aws.facade.watch_calls (every call the commands make goes
through the facade); mutating = not Describe/List/Get/Head. Figures go to stdout and
bench/results/deploy.json; see bench/README.md.
"""
import collections
import dataclasses
import sys
import time

import benchlib

from yunpipe.aws.facade import is_mutating, watch_calls
from yunpipe.commands import demo
from yunpipe.local import cloud
from yunpipe.registry import AlgorithmRegistry

SIZES = (1, 3, 10)
PHASES = ("deploy", "redeploy", "clean-up")


def record_steps(registry: AlgorithmRegistry, reference: str, count: int) -> list[str]:
    """`count` algorithm names for one already wrapped image."""
    wrapped = registry.resolve(reference, "bench", "algorithm")
    names = []
    for index in range(1, count + 1):
        spec = dataclasses.replace(wrapped.spec, name=f"bench-step-{index:02d}")
        names.append(registry.record(spec, wrapped.image, wrapped.digest).reference)
    return names


def measure(*argv: str) -> dict:
    """Wall time and API calls of one yunpipe command, run as a user types it."""
    with watch_calls() as calls:
        started = time.monotonic()
        demo.run(*argv)
        seconds = time.monotonic() - started
    mutating = collections.Counter(f"{service}:{op}" for service, op in calls if is_mutating(op))
    return {"seconds": round(seconds, 2), "calls": len(calls), "mutating_calls": sum(mutating.values()),
            "mutating_by_operation": dict(sorted(mutating.items()))}


def report(doc: dict) -> None:
    rows = doc["sequences"]
    header = f"{'steps':>5}" + "".join(f" | {phase + ' s':>11} {'calls':>6} {'mut.':>5}" for phase in PHASES)
    print(header)
    print("-" * len(header))
    for size, phases in rows.items():
        print(f"{size:>5}" + "".join(f" | {p['seconds']:>11} {p['calls']:>6} {p['mutating_calls']:>5}"
                                     for p in (phases[phase] for phase in PHASES)))


def main() -> int:
    with benchlib.bench() as bench:
        registry = AlgorithmRegistry()
        steps = record_steps(registry, demo.wrap_algorithm(bench.client, registry, benchlib.UPPERCASE), max(SIZES))
        rows = {}
        with cloud.LocalCloud(port=0):
            for size in SIZES:
                name = f"bench-deploy-{size}"
                chain = [{"name": ref} for ref in steps[:size]]
                workflow = str(benchlib.write_workflow(bench.work, name, "sequence_run", chain))
                rows[size] = {"deploy": measure("setup-pipe", "--local", "-f", workflow),
                              "redeploy": measure("setup-pipe", "--local", "-f", workflow),
                              "clean-up": measure("clean-up", "--local", "--purge", name)}
    doc = {"benchmark": "deploy", "machine": bench.machine, "sequences": rows, "peak_rss_mib": benchlib.peak_rss_mib()}
    return benchlib.finish("deploy", doc, report)


if __name__ == "__main__":
    sys.exit(main())
