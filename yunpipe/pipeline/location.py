"""Where a pipeline lives, recorded when it is deployed so the commands that name it (status,
logs, upload, results, clean-up) go back there without --local or --endpoint-url again.

Recorded as the summary's location (PipelineSummary.location) in the pipeline's state:
    {"cloud": "local" | "localstack" | "aws", "endpoint_url": str | None, "account_id": str,
     "region": str, "profile": str | None}
Never credentials. The field was added to schema_version 1 backward-compatibly: a summary
without it (written by an older yunpipe) is reached with the command's flags, as before.
"""
import os

from yunpipe.aws.facade import Aws
from yunpipe.aws.session import AwsOptions, open_aws, wants_local
from yunpipe.errors import InputError, YunpipeError
from yunpipe.local import announcement
from yunpipe.engine.state import PipelineState, PipelineSummary, state_path


def cloud_of(options: AwsOptions) -> str:
    if wants_local(options):
        return "local"
    return "localstack" if options.localstack else "aws"


def _flag_endpoint(options: AwsOptions) -> str | None:
    # As in open_aws: an explicit flag wins over AWS_ENDPOINT_URL, which boto3 reads itself.
    return options.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def record(options: AwsOptions, aws: Aws, account_id: str) -> dict:
    """Where `aws` (opened from `options`) deploys."""
    cloud = cloud_of(options)
    if cloud == "local":
        endpoint = aws.endpoint_url
    elif cloud == "localstack":
        endpoint = aws.client("sts").meta.endpoint_url
    else:
        endpoint = _flag_endpoint(options)
    profile = None if cloud == "local" else options.profile or os.environ.get("AWS_PROFILE") or None
    return {"cloud": cloud, "endpoint_url": endpoint, "account_id": account_id, "region": aws.region,
            "profile": profile}


def describe(location: dict) -> str:
    if location["cloud"] == "local":
        return "the local cloud"
    name = "LocalStack" if location["cloud"] == "localstack" else "AWS"
    text = f"{name} account {location.get('account_id')} region {location.get('region')}"
    if location.get("endpoint_url") and location["cloud"] == "aws":
        text += f" at {location['endpoint_url']}"
    if location.get("profile"):
        text += f" (profile {location['profile']})"
    return text


def same_place(recorded: dict, current: dict) -> bool:
    """Keys missing from `current` are not known yet and not compared. One local cloud per
    machine: its endpoint (port) may change between runs and is still the same place."""
    if recorded["cloud"] != current["cloud"]:
        return False
    keys = ("region", "account_id") if recorded["cloud"] == "local" else ("endpoint_url", "region", "account_id")
    return all(recorded.get(key) == current[key] for key in keys if key in current)


def refuse_elsewhere(spec, state: PipelineState, current: dict) -> None:
    """setup-pipe must not overwrite the state of a same-named pipeline that lives elsewhere
    (a local demo over an AWS pipeline called demo): it would lose track of that one."""
    recorded = state.summary.location if state.summary else None
    if recorded and not same_place(recorded, current):
        raise InputError(spec.source, "name", f"pipeline '{spec.name}' already lives in {describe(recorded)} "
                         f"({state_path(spec.name)}); clean-up {spec.name} first, or pick another name")


def check_flags(options: AwsOptions, pipeline: str, location: dict) -> None:
    """A flag (or its environment variable) naming another place than the record is an error,
    not a silent detour. --profile is who you are, not where the pipeline is: it may differ."""
    cloud = location["cloud"]
    lives = f"pipeline '{pipeline}' lives in {describe(location)}; drop the flag, yunpipe goes there by itself"

    def contradiction(flag: str, value: str = "") -> InputError:
        return InputError(flag, value, f"contradicts where {lives}")

    if options.local and cloud != "local":
        raise contradiction("--local")
    if os.environ.get("YUNPIPE_LOCAL") == "1" and cloud != "local":
        raise contradiction("YUNPIPE_LOCAL=1")
    if options.localstack and cloud != "localstack":
        raise contradiction("--localstack")
    flag = options.endpoint_url
    if flag and (cloud != "aws" or flag != location.get("endpoint_url")):
        raise contradiction("--endpoint-url", flag)
    variable = os.environ.get("AWS_ENDPOINT_URL")
    if cloud == "aws" and not flag and variable and variable != location.get("endpoint_url"):
        raise contradiction("AWS_ENDPOINT_URL", variable)
    region = options.region
    if region and region != location["region"]:
        raise contradiction("--region", region)


def open_pipeline_aws(options: AwsOptions, pipeline: str, summary: PipelineSummary | None) -> Aws:
    """The facade for where the pipeline lives; the command's flags for a summary recorded
    before yunpipe kept the location, or for no summary at all."""
    location = summary.location if summary else None
    if location is None:
        aws = open_aws(options, summary.region if summary else None)
        if not aws.region:
            raise YunpipeError("no AWS region: pass --region, or set region in the workflow or your AWS profile")
        return aws
    check_flags(options, pipeline, location)
    if location["cloud"] == "local" and announcement.read_state() is None:
        raise YunpipeError(f"pipeline '{pipeline}' lives on the local cloud, which is not running: "
                           "run `yunpipe local up`")
    there = AwsOptions(
        local=location["cloud"] == "local", localstack=location["cloud"] == "localstack",
        profile=options.profile or location.get("profile"), region=location["region"],
        endpoint_url=location.get("endpoint_url") if location["cloud"] == "aws" else None)
    return open_aws(there)


def intended(options: AwsOptions) -> dict:
    """The place as far as the flags alone tell, before any AWS call."""
    cloud = cloud_of(options)
    return {"cloud": cloud, "endpoint_url": _flag_endpoint(options)} if cloud == "aws" else {"cloud": cloud}
