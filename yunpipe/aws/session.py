"""Which AWS to talk to: the standard credential chain, a profile, an endpoint, LocalStack or
yunpipe's local cloud. Builds the one `Aws` facade every command uses.
"""
import os
from dataclasses import dataclass

import boto3
from botocore.exceptions import ProfileNotFound

from yunpipe.aws.facade import Aws
from yunpipe.errors import InputError, YunpipeError
from yunpipe.local import announcement

# The local cloud accepts any key pair; fixed fake keys keep real credentials out of it.
LOCAL_CREDENTIALS = {"aws_access_key_id": "yunpipe-local", "aws_secret_access_key": "yunpipe-local"}
LOCAL_REGION = "us-east-1"


def local_endpoint() -> str:
    """The endpoint the running local cloud announced (yunpipe.local.announcement)."""
    current = announcement.read_state()
    if current is None:
        raise YunpipeError(f"no local cloud runs ({announcement.state_path()}): run `yunpipe local up` first")
    return current["endpoint"]


@dataclass(frozen=True)
class AwsOptions:
    """Where a command's flags (--local, --localstack, --profile, --region, --endpoint-url) point."""
    local: bool = False
    localstack: bool = False
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    @classmethod
    def from_args(cls, args) -> "AwsOptions":
        """The options of parsed command-line arguments; a command without some flag gets its default."""
        return cls(local=bool(getattr(args, "local", False)), localstack=bool(getattr(args, "localstack", False)),
                   profile=getattr(args, "profile", None), region=getattr(args, "region", None),
                   endpoint_url=getattr(args, "endpoint_url", None))


def wants_local(options: AwsOptions) -> bool:
    return options.local or os.environ.get("YUNPIPE_LOCAL") == "1"


def open_aws(options: AwsOptions, region: str | None = None) -> Aws:
    """The facade for the command's AWS options; `region` is the workflow's, used when no
    --region is given."""
    region = options.region or region
    if wants_local(options):
        session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
        return Aws(session, endpoint_url=local_endpoint())
    if options.localstack:
        # Imported here: only LocalStack users need the package at run time.
        from localstack_client.session import Session as LocalstackSession
        return Aws(LocalstackSession(region_name=region or LOCAL_REGION, profile_name=options.profile))
    try:
        session = boto3.Session(profile_name=options.profile, region_name=region)
    except ProfileNotFound as error:
        raise InputError("--profile", options.profile or "", f"expected a profile of your AWS config ({error})") from None
    # boto3 reads AWS_ENDPOINT_URL itself; an explicit flag wins over it.
    return Aws(session, endpoint_url=options.endpoint_url)
