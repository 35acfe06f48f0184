"""Which AWS to talk to, resolved in one place: the standard credential chain, a profile, an
endpoint, LocalStack or yunpipe's local cloud. Every host-side boto3 session and client comes
from a `Location` (the `Aws` facade of the commands, `wrap -r ecr`, the local cloud's clients).

Resolved from, in this order of precedence:
    the command's flags (`AwsOptions`: --local, --localstack, --profile, --region, --endpoint-url),
    the environment (YUNPIPE_LOCAL=1, AWS_ENDPOINT_URL, AWS_PROFILE; boto3 reads the last two itself),
    the pipeline's record (PipelineSummary.location, written when it was deployed),
    the local cloud's announcement (yunpipe.aws.announcement: the endpoint of the running one).

The record, as the state file keeps it (schema 1, unchanged):
    {"cloud": "local" | "localstack" | "aws", "endpoint_url": str | None, "account_id": str,
     "region": str, "profile": str | None}
Never credentials. A summary without it (written by an older yunpipe) is reached with the
command's flags.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ProfileNotFound

from yunpipe.aws import announcement
from yunpipe.aws.facade import Aws
from yunpipe.errors import InputError, PipelineGone, YunpipeError
from yunpipe.runtime.contract import REGION_PATTERN

LOCAL, LOCALSTACK, AWS = "local", "localstack", "aws"
# The local cloud accepts any key pair; fixed fake keys keep real credentials out of it (and let
# it run on a machine that has none). The one spelling: LOCAL_ENVIRONMENT is the same pair as
# the variables its containers get.
LOCAL_CREDENTIALS = {"aws_access_key_id": "yunpipe-local", "aws_secret_access_key": "yunpipe-local"}
LOCAL_ENVIRONMENT = {name.upper(): value for name, value in LOCAL_CREDENTIALS.items()}
LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class AwsOptions:
    """Where a command's flags (--local, --localstack, --profile, --region, --endpoint-url) point."""
    local: bool = False
    localstack: bool = False
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None


def wants_local(options: AwsOptions) -> bool:
    return options.local or os.environ.get("YUNPIPE_LOCAL") == "1"


def local_endpoint() -> str:
    """The endpoint the running local cloud announced."""
    current = announcement.read_state()
    if current is None:
        raise YunpipeError(f"no local cloud runs ({announcement.state_path()}): run `yunpipe local up` first")
    return str(current["endpoint"])


# One session for every local-cloud client of the process: its loader keeps the service models
# and endpoints it parsed, so a client after the first of its service costs a few ms instead of
# ~50 ms of JSON parsing, which each part of a local cloud (Lambda host, ECS runner, scheduler)
# paid again, on the same CPU as the emulator. A session is not thread-safe, its clients are:
# clients are made under a lock.
_shared_session: boto3.session.Session | None = None
_shared_lock = threading.Lock()


@dataclass(frozen=True)
class Location:
    """A resolved place. `endpoint_url` and `profile` are the ones named explicitly (a flag or the
    record); None leaves them to boto3's own chain (AWS_ENDPOINT_URL, AWS_PROFILE, the config).
    `region` None: the profile's. `account_id` is known only from a record."""
    cloud: str = AWS
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    account_id: str | None = None

    @classmethod
    def local_cloud(cls, endpoint_url: str, region: str = LOCAL_REGION) -> Location:
        return cls(LOCAL, endpoint_url, region)

    def session(self) -> Any:
        """A boto3 session (LocalStack's, for LocalStack) for this place."""
        if self.cloud == LOCAL:
            return boto3.Session(region_name=self.region, **LOCAL_CREDENTIALS)
        if self.cloud == LOCALSTACK:
            # Imported here: only LocalStack users need the package at run time.
            from localstack_client.session import Session as LocalstackSession
            return LocalstackSession(region_name=self.region, profile_name=self.profile)
        try:
            return boto3.Session(profile_name=self.profile, region_name=self.region)
        except ProfileNotFound as error:
            raise InputError("--profile", self.profile or "", f"expected a profile of your AWS config ({error})") from None

    def open(self) -> Aws:
        """The facade every command uses."""
        return Aws(self.session(), endpoint_url=self.endpoint_url)

    def client(self, service: str, config: Any = None) -> Any:
        """A plain client (no facade); the local cloud's share one session (see _shared_session)."""
        if self.cloud != LOCAL:
            return self.session().client(service, endpoint_url=self.endpoint_url, config=config)
        global _shared_session
        with _shared_lock:
            if _shared_session is None:
                _shared_session = boto3.session.Session()
            return _shared_session.client(service, region_name=self.region, endpoint_url=self.endpoint_url,
                                          config=config, **LOCAL_CREDENTIALS)

    def place_endpoint(self) -> str | None:
        """The endpoint of an AWS-API place as the record keeps it: the explicit one, else the
        environment's (which boto3 reads itself)."""
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None

    def intended(self) -> dict:
        """The place as far as it is known before any AWS call (a partial record)."""
        return {"cloud": self.cloud, "endpoint_url": self.place_endpoint()} if self.cloud == AWS else {"cloud": self.cloud}

    def record(self, aws: Aws, account_id: str) -> dict:
        """Where `aws` (opened from this location) deploys, as the state file records it."""
        if self.cloud == LOCAL:
            endpoint = aws.endpoint_url
        elif self.cloud == LOCALSTACK:
            endpoint = aws.client("sts").meta.endpoint_url
        else:
            endpoint = self.place_endpoint()
        profile = None if self.cloud == LOCAL else self.profile or os.environ.get("AWS_PROFILE") or None
        record = {"cloud": self.cloud, "endpoint_url": endpoint, "account_id": account_id, "region": aws.region,
                  "profile": profile}
        running = announcement.read_state() if self.cloud == LOCAL else None
        if running and running.get("started_at"):
            record["local_cloud"] = running["started_at"]  # which run of the local cloud holds it
        return record


def resolve(options: AwsOptions, region: str | None = None) -> Location:
    """Where the flags and the environment point; `region` is the workflow's, used when no
    --region is given. The local cloud must be running (its announcement names the endpoint)."""
    if options.region is not None and not re.match(REGION_PATTERN, options.region):
        raise InputError("--region", "", f"expected an AWS region such as us-east-1, got {options.region!r}")
    region = options.region or region
    if wants_local(options):
        return Location.local_cloud(local_endpoint())
    if options.localstack:
        return Location(LOCALSTACK, None, region or LOCAL_REGION, options.profile)
    # boto3 reads AWS_ENDPOINT_URL itself; an explicit flag wins over it.
    return Location(AWS, options.endpoint_url, region, options.profile)


def cloud_of(options: AwsOptions) -> str:
    """The cloud the flags and the environment name, without looking for a running local cloud."""
    if wants_local(options):
        return LOCAL
    return LOCALSTACK if options.localstack else AWS


def intended(options: AwsOptions) -> dict:
    """The place as far as the flags alone tell, before any AWS call (nor a running local cloud)."""
    return Location(cloud_of(options), options.endpoint_url).intended()


def open_aws(options: AwsOptions, region: str | None = None) -> Aws:
    """The facade for the command's AWS options (see resolve)."""
    return resolve(options, region).open()


def describe(record: dict) -> str:
    """A recorded place in words."""
    if record["cloud"] == LOCAL:
        return "the local cloud"
    name = "LocalStack" if record["cloud"] == LOCALSTACK else "AWS"
    text = f"{name} account {record.get('account_id')} region {record.get('region')}"
    if record.get("endpoint_url") and record["cloud"] == AWS:
        text += f" at {record['endpoint_url']}"
    if record.get("profile"):
        text += f" (profile {record['profile']})"
    return text


def same_place(recorded: dict, current: dict) -> bool:
    """Keys missing from `current` are not known yet and not compared. One local cloud per
    machine: its endpoint (port) may change between runs and is still the same place."""
    if recorded["cloud"] != current["cloud"]:
        return False
    keys = ("region", "account_id") if recorded["cloud"] == LOCAL else ("endpoint_url", "region", "account_id")
    return all(recorded.get(key) == current[key] for key in keys if key in current)


def check_flags(options: AwsOptions, pipeline: str, record: dict) -> None:
    """A flag (or its environment variable) naming another place than the record is an error,
    not a silent detour. --profile is who you are, not where the pipeline is: it may differ."""
    cloud = record["cloud"]
    lives = f"pipeline '{pipeline}' lives in {describe(record)}; drop the flag, yunpipe goes there by itself"

    def contradiction(flag: str, value: str = "") -> InputError:
        return InputError(flag, value, f"contradicts where {lives}")

    if options.local and cloud != LOCAL:
        raise contradiction("--local")
    if os.environ.get("YUNPIPE_LOCAL") == "1" and cloud != LOCAL:
        raise contradiction("YUNPIPE_LOCAL=1")
    if options.localstack and cloud != LOCALSTACK:
        raise contradiction("--localstack")
    flag = options.endpoint_url
    if flag and (cloud != AWS or flag != record.get("endpoint_url")):
        raise contradiction("--endpoint-url", flag)
    variable = os.environ.get("AWS_ENDPOINT_URL")
    if cloud == AWS and not flag and variable and variable != record.get("endpoint_url"):
        raise contradiction("AWS_ENDPOINT_URL", variable)
    if options.region and options.region != record["region"]:
        raise contradiction("--region", options.region)


def of_pipeline(options: AwsOptions, pipeline: str, record: dict | None, region: str | None = None) -> Location:
    """Where a deployed pipeline lives: its record, which the flags may not contradict; the flags
    (and `region`, the summary's) for a pipeline recorded before yunpipe kept places."""
    if record is None:
        return resolve(options, region)
    check_flags(options, pipeline, record)
    cloud = record["cloud"]
    profile = options.profile or record.get("profile")
    if cloud == LOCAL:
        if announcement.read_state() is None:
            raise YunpipeError(f"pipeline '{pipeline}' lives on the local cloud, which is not running: "
                               "run `yunpipe local up`")
        if local_cloud_gone(record):
            raise PipelineGone(f"pipeline '{pipeline}' was on a local cloud that has stopped since (`local down`, or "
                               "a restart): its buckets, queues and files went with it. Set it up again with "
                               f"`yunpipe setup-pipe --local -f WORKFLOW`, or forget it with `yunpipe clean-up {pipeline}`")
        return Location(LOCAL, local_endpoint(), LOCAL_REGION, None, record.get("account_id"))
    if cloud == LOCALSTACK:
        return Location(LOCALSTACK, None, record["region"], profile, record.get("account_id"))
    return Location(AWS, record.get("endpoint_url"), record["region"], profile, record.get("account_id"))


def local_cloud_gone(record: dict | None) -> bool:
    """Whether a pipeline recorded on the local cloud was set up on an earlier run of it than the
    one running now (a local cloud starts empty). Unknown, so False, when none runs or the record
    predates the runs' identity."""
    if not record or record.get("cloud") != LOCAL or not record.get("local_cloud"):
        return False
    running = announcement.read_state()
    return bool(running and running.get("started_at") and running["started_at"] != record["local_cloud"])


def open_with_region(location: Location) -> Aws:
    """The facade, or an error when neither flag, workflow nor profile gives a region."""
    aws = location.open()
    if not aws.region:
        # The likely slip when a local cloud runs: the command was meant for it.
        running = announcement.read_state() if location.cloud == AWS and not location.endpoint_url else None
        hint = (f"; a local cloud runs at {running['endpoint']}: add --local (or set YUNPIPE_LOCAL=1) to use it"
                if running else "")
        raise InputError("--region", "", "expected an AWS region: pass --region, or set region in the workflow or your "
                                         f"AWS profile{hint}")
    return aws
