"""Amazon ECR: the repository `wrap -r ecr` pushes to and credentials for the push; where an
image URI points in ECR, and whether the image is there (`yunpipe doctor`)."""
import base64
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from yunpipe.aws.location import Location
from yunpipe.errors import YunpipeError

# An image in ECR: standard, FIPS or dual-stack endpoint, then the repository and a tag or digest.
_IMAGE = re.compile(r"^(\d{12})\.dkr(?:\.ecr|\.ecr-fips|-ecr)\.([a-z0-9-]+)\.(?:amazonaws\.com(?:\.cn)?|on\.aws)/"
                    r"([^:@]+)(?:([:@])(.+))?$")


@dataclass(frozen=True)
class EcrImage:
    account: str
    region: str
    repository: str
    image_id: dict  # as DescribeImages takes it: {"imageTag": ...} or {"imageDigest": ...}


def ecr_image(uri: str) -> EcrImage | None:
    """Where `uri` is in ECR; None for an image of another registry."""
    match = _IMAGE.match(uri)
    if not match:
        return None
    account, region, repository, separator, reference = match.groups()
    image_id = {"imageDigest": reference} if separator == "@" else {"imageTag": reference or "latest"}
    return EcrImage(account, region, repository, image_id)


def image_missing(client: Any, image: EcrImage) -> str:
    """Why ECR has no such image ("" when it has): no repository, or no such tag or digest in it.
    Access refusals are raised, as any other ClientError."""
    try:
        client.describe_images(registryId=image.account, repositoryName=image.repository, imageIds=[image.image_id])
    except client.exceptions.RepositoryNotFoundException:
        return f"no repository {image.repository} in account {image.account}'s registry in {image.region}"
    except client.exceptions.ImageNotFoundException:
        return f"no image {next(iter(image.image_id.values()))} in repository {image.repository}"
    return ""


def ecr_client(location: Location) -> Any:
    """ECR where the command's location points (its profile, region or endpoint)."""
    try:
        return location.client("ecr")
    except BotoCoreError as exc:
        raise YunpipeError(f"ECR: {exc}") from None


def ensure_repository(client: Any, name: str) -> str:
    """The URI of repository `name`, created (scan on push, encrypted) when missing."""
    try:
        return client.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"]
    except client.exceptions.RepositoryNotFoundException:
        pass
    except (BotoCoreError, ClientError) as exc:
        raise YunpipeError(f"ECR: cannot look up repository {name}: {exc}") from None
    try:
        return client.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": True},
                                        encryptionConfiguration={"encryptionType": "AES256"})["repository"]["repositoryUri"]
    except (BotoCoreError, ClientError) as exc:
        raise YunpipeError(f"ECR: cannot create repository {name}: {exc}") from None


def docker_auth(client: Any) -> dict:
    """A Docker auth_config from an ECR authorization token (valid for 12 hours)."""
    try:
        data = client.get_authorization_token()["authorizationData"][0]
    except (BotoCoreError, ClientError) as exc:
        raise YunpipeError(f"ECR: cannot get an authorization token: {exc}") from None
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return {"username": username, "password": password, "serveraddress": data["proxyEndpoint"]}
