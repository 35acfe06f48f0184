"""Which AWS to talk to: the standard credential chain, a profile, an endpoint, LocalStack or
yunpipe's local cloud. Builds the one `Aws` facade every command uses.
"""
import os

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


def wants_local(args) -> bool:
    return bool(getattr(args, "local", False)) or os.environ.get("YUNPIPE_LOCAL") == "1"


def open_aws(args, region: str | None = None) -> Aws:
    """The facade for the command's AWS options; `region` is the workflow's, used when no
    --region is given."""
    region = getattr(args, "region", None) or region
    if wants_local(args):
        session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
        return Aws(session, endpoint_url=local_endpoint())
    if getattr(args, "localstack", False):
        # Imported here: only LocalStack users need the package at run time.
        from localstack_client.session import Session as LocalstackSession
        return Aws(LocalstackSession(region_name=region or LOCAL_REGION, profile_name=getattr(args, "profile", None)))
    try:
        session = boto3.Session(profile_name=getattr(args, "profile", None), region_name=region)
    except ProfileNotFound as error:
        raise InputError("--profile", args.profile, f"expected a profile of your AWS config ({error})") from None
    # boto3 reads AWS_ENDPOINT_URL itself; an explicit flag wins over it.
    return Aws(session, endpoint_url=getattr(args, "endpoint_url", None))
