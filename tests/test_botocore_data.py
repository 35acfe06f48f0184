"""The slimmed botocore data of wrapped images (issue 11, fast starts): smaller, and resolving
every endpoint and request exactly as botocore's full data does."""
import json
import subprocess
import sys
from pathlib import Path

import botocore
import pytest

from yunpipe.specs.algorithm import load_algorithm
from yunpipe.wrapper import botocore_data
from yunpipe.wrapper.context import (
    BOTO3_FOR_OLD_PYTHON,
    RUNTIME_SERVICES,
    SITE_PACKAGES,
    BaseImage,
    fetch_wheels,
    host_boto3_python,
    unpack_wheels,
    write_build_context,
)

UPPERCASE = Path(__file__).resolve().parents[1] / "examples" / "uppercase" / "uppercase.json"

# What the runscript's clients would send, computed without a network: for each region and
# addressing style, S3's presigned GET and PUT URLs (their query holds the time, so it is cut)
# and SQS's endpoint; and the operations each client offers.
REQUESTS = r"""
import json, sys
if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])
import botocore.session
from botocore.config import Config

session = botocore.session.get_session()
session.set_credentials("AKIDEXAMPLE", "secret")
seen = {}
for region in ("us-east-1", "eu-west-1", "ap-southeast-3", "cn-north-1", "us-gov-west-1"):
    for style in ("auto", "path", "virtual"):
        for endpoint in (None, "http://127.0.0.1:4566"):
            s3 = session.create_client("s3", region_name=region, endpoint_url=endpoint,
                                       config=Config(s3={"addressing_style": style}))
            for operation in ("get_object", "put_object"):
                url = s3.generate_presigned_url(operation, Params={"Bucket": "my-bucket", "Key": "a b/c.txt"})
                seen[f"s3 {region} {style} {endpoint} {operation}"] = url.split("?")[0]
    sqs = session.create_client("sqs", region_name=region)
    seen[f"sqs {region}"] = sqs.meta.endpoint_url
    sns = session.create_client("sns", region_name=region)
    seen[f"sns {region}"] = sns.meta.endpoint_url
seen["botocore"] = botocore.__file__
seen["s3 operations"] = sorted(s3.meta.service_model.operation_names)
seen["sqs operations"] = sorted(sqs.meta.service_model.operation_names)
seen["sns operations"] = sorted(sns.meta.service_model.operation_names)
print(json.dumps(seen, sort_keys=True))
"""


def requests(site_packages=None) -> dict:
    """REQUESTS run with the botocore in site_packages (else the host's); checked to be that one."""
    argv = [sys.executable, "-I", "-c", REQUESTS] + ([str(site_packages)] if site_packages else [])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    location = Path(seen.pop("botocore"))
    assert location.is_relative_to(site_packages) if site_packages else location == Path(botocore.__file__)
    return seen


@pytest.fixture(scope="module")
def site_packages(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("context")
    write_build_context(load_algorithm(UPPERCASE), 1, directory, BaseImage(python=host_boto3_python()))
    return directory / SITE_PACKAGES


def test_the_slimmed_data_resolves_every_request_as_the_full_data_does(site_packages):
    slimmed = requests(site_packages)
    assert slimmed == requests()
    # The comparison covers what it claims: real per-region endpoints and the services' APIs.
    assert slimmed["s3 cn-north-1 virtual None get_object"] == "https://my-bucket.s3.cn-north-1.amazonaws.com.cn/a%20b/c.txt"
    assert slimmed["sqs us-gov-west-1"] == "https://sqs.us-gov-west-1.amazonaws.com"
    assert {"GetObject", "PutObject", "CreateMultipartUpload"} <= set(slimmed["s3 operations"])
    assert {"ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility"} <= set(slimmed["sqs operations"])
    # The notifications' (yunpipe.runtime.accounting.notify).
    assert slimmed["sns cn-north-1"] == "https://sns.cn-north-1.amazonaws.com.cn"
    assert "Publish" in slimmed["sns operations"]


def test_the_slimmed_data_is_compact_ungzipped_and_lists_only_the_runtime_services(site_packages):
    data = site_packages / "botocore" / "data"
    assert not list(data.rglob("*.gz"))
    service_model = (data / "s3").glob("*/service-2.json")
    text = next(service_model).read_text()
    model = json.loads(text)
    assert "\n" not in text and "documentation" not in model
    assert not [name for name, op in model["operations"].items() if "documentation" in op]
    assert not [name for name, shape in model["shapes"].items() if "documentation" in shape]
    endpoints = json.loads((data / "endpoints.json").read_text())
    assert all(set(partition["services"]) <= {"s3", "sqs", "sns", "lambda"} for partition in endpoints["partitions"])
    assert {"s3", "sqs", "sns", "lambda"} <= set(endpoints["partitions"][0]["services"])
    # Everything the runtime loads is a fraction of botocore's own files (with Lambda's model, for
    # the worker that wakes its launcher, 737 kB; it is read only when that happens).
    assert sum(p.stat().st_size for p in data.rglob("*.json")) < 800_000


def test_only_documentation_botocore_reads_with_a_default_is_dropped(tmp_path):
    """A member named "documentation" stays, and so do the blocks whose documentation botocore
    requires (clientContextParams)."""
    context_params = {"Accelerate": {"type": "boolean", "documentation": "Enables this client to use S3 Transfer Acceleration."}}
    model = {"documentation": "The service.", "clientContextParams": context_params,
             "operations": {"Get": {"name": "Get", "documentation": "Gets."}},
             "shapes": {"Doc": {"type": "structure", "documentation": "x",
                                "members": {"documentation": {"shape": "String", "documentation": "y"}}}}}
    (tmp_path / "service-2.json").write_text(json.dumps(model, indent=2))
    botocore_data.slim(tmp_path, ["s3"])
    assert json.loads((tmp_path / "service-2.json").read_text()) == {
        "clientContextParams": context_params, "operations": {"Get": {"name": "Get"}},
        "shapes": {"Doc": {"type": "structure", "members": {"documentation": {"shape": "String"}}}}}


@pytest.mark.parametrize("python", sorted(BOTO3_FOR_OLD_PYTHON))
def test_the_older_botocore_releases_resolve_the_same_slimmed(tmp_path, python):
    """Images for older python3s carry older botocore releases (some with ungzipped data); each
    resolves the same with its data slimmed (run on this python, which they support too)."""
    full, slimmed = tmp_path / "full", tmp_path / "slimmed"
    wheels = fetch_wheels(BOTO3_FOR_OLD_PYTHON[python], python)
    unpack_wheels(wheels, full)
    unpack_wheels(wheels, slimmed)
    botocore_data.slim(slimmed / "botocore" / "data", RUNTIME_SERVICES)
    assert requests(slimmed) == requests(full)
