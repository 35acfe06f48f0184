"""`yunpipe replay`: a pipeline's failed job again, on this machine in Docker: the step's own task
definition (its image, environment and size, as ECS runs it) and the same input object, read
with the user's credentials wherever the pipeline lives (the local cloud or AWS)."""
import dataclasses
import json
import posixpath
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from yunpipe.aws import ecr
from yunpipe.aws.location import AwsOptions
from yunpipe.aws.reader import Reader
from yunpipe.engine.graph import Layout
from yunpipe.engine.state import find_step, require_summary
from yunpipe.errors import InputError, NotFoundError
from yunpipe.operations import onejob
from yunpipe.operations.reach import reach


@dataclass(frozen=True)
class ReplayOptions:
    pipeline: str
    report: str | None = None  # a failure report's key in the reports bucket
    step: str | None = None  # or a step and an input key of it
    key: str | None = None
    shell: bool = False
    output: str | None = None  # where an ok job's result goes (default: not kept)
    where: AwsOptions = field(default_factory=AwsOptions)


@dataclass(frozen=True)
class FailedJob:
    step: str
    bucket: str
    key: str


def _check(options: ReplayOptions) -> None:
    by_report = bool(options.report) and not (options.step or options.key)
    if not (by_report or (not options.report and options.step and options.key)):
        raise InputError("replay", "--report/--step --key",
                         "expected either --report KEY (a failure report, as `yunpipe status` lists them) "
                         "or both --step STEP and --key KEY")


def failed_job(reader: Reader, reports_bucket: str, report_key: str) -> FailedJob:
    """The step, bucket and key a failure report names."""
    answer = reader.read("s3", "get_object", ("NoSuchKey", "404"), Bucket=reports_bucket, Key=report_key)
    if answer is None:
        raise NotFoundError(f"no failure report s3://{reports_bucket}/{report_key}")
    try:
        report = json.loads(answer["Body"].read())
    except (ValueError, UnicodeDecodeError):
        raise InputError("replay", "--report", f"expected a failure report (JSON), s3://{reports_bucket}/{report_key} "
                                               "is not one") from None
    if not (isinstance(report, dict) and all(isinstance(report.get(k), str) for k in ("step", "bucket", "key"))):
        raise InputError("replay", "--report", f"expected a report naming a step, a bucket and a key; "
                                               f"{report_key} names none (a message that was no job)")
    return FailedJob(report["step"], report["bucket"], report["key"])


def job_of(reader: Reader, options: ReplayOptions) -> tuple[FailedJob, onejob.OneJob, str]:
    """The failed job, what to run for it (its input not yet downloaded: `file` is its name) and
    the step's task definition's secrets, which are not set here."""
    summary = require_summary(options.pipeline)
    if options.report:
        failed = failed_job(reader, summary.reports_bucket, options.report)
        step = find_step(summary, failed.step, "replay")
    else:
        step = find_step(summary, options.step, "replay")
        failed = FailedJob(step.name, step.input_bucket, str(options.key))
    placement = Layout.from_document(summary.layout).step(step.name) if summary.layout else None
    if placement is not None and (placement.join or placement.gather):
        # Its job stages several objects (a join's, a gather's folder), which once.py does not.
        kind = "a join" if placement.join else "a gather"
        raise InputError("replay", "--report" if options.report else "--step",
                         f"expected a step that runs one input object per job: step {step.name} is {kind}, "
                         "which replay does not run")
    found = reader.read("ecs", "describe_task_definition", ("ClientException",), taskDefinition=step.task_family)
    if found is None:
        raise NotFoundError(f"no task definition {step.task_family} of step {step.name}: is the pipeline still set up?")
    definition = found["taskDefinition"]
    container = definition["containerDefinitions"][0]
    environment = {e["name"]: e["value"] for e in container.get("environment", [])}
    secrets = ", ".join(s["name"] for s in container.get("secrets", []))
    memory = int(definition.get("memory") or container.get("memory") or 0) or None
    cpu = int(definition.get("cpu") or container.get("cpu") or 0) / 1024 or None
    name = posixpath.basename(failed.key)
    return failed, onejob.OneJob(container["image"], environment, Path(name), memory, cpu), secrets


def replay(options: ReplayOptions) -> onejob.Finished | int:
    """The job run again (its outcome), or with `shell` the exit status of a shell in its container."""
    from yunpipe.wrapper.images import docker_client

    _check(options)
    if options.shell:
        onejob.require_terminal()
    summary = require_summary(options.pipeline)
    aws = reach(options.where, options.pipeline, summary)
    reader = Reader(aws)
    failed, job, secrets = job_of(reader, options)
    if secrets:
        print(f"step {failed.step}'s secrets are not set here: {secrets}", file=sys.stderr)
    client = docker_client()
    # An image in Amazon ECR is pulled with the user's own credentials.
    auth = ecr.docker_auth(aws.client("ecr")) if ecr.ecr_image(job.image) else None
    onejob.ensure_image(client, job.image, auth)
    if reader.read("s3", "head_object", ("404", "NoSuchKey", "NotFound"), Bucket=failed.bucket, Key=failed.key) is None:
        raise NotFoundError(f"the job's input s3://{failed.bucket}/{failed.key} is no longer there")
    # The input and, without --output, the result live only as long as the replay.
    with tempfile.TemporaryDirectory(prefix="yunpipe-replay-") as work:
        local = Path(work) / "input" / job.file.name
        local.parent.mkdir()
        aws.client("s3").download_file(failed.bucket, failed.key, str(local))
        print(f"replaying step {failed.step} on s3://{failed.bucket}/{failed.key} with {job.image}", file=sys.stderr)
        job = onejob.OneJob(job.image, job.environment, local, job.memory_mib, job.cpu)
        if options.shell:
            return onejob.shell(client, job)
        finished = onejob.run(client, job, Path(options.output) if options.output else Path(work) / "result")
    return finished if options.output else dataclasses.replace(finished, result=None)
