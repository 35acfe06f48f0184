"""Amazon ECR for `wrap -r ecr`: the repository to push to, and credentials for the push."""
import base64
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from yunpipe.aws.location import Location
from yunpipe.errors import YunpipeError


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
