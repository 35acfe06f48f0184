"""The tests' check of every call against botocore's service models (tests/botocore_model.py)."""
import boto3
import botocore.session
import pytest
from botocore_model import ModelViolation, violations
from helpers import REGION

TRUST = '{"Version": "2012-10-17", "Statement": []}'


def test_a_name_one_character_too_long_fails_before_it_is_sent(moto):
    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName="r" * 64, AssumeRolePolicyDocument=TRUST)  # IAM's longest role name
    with pytest.raises(ModelViolation) as raised:
        iam.create_role(RoleName="r" * 65, AssumeRolePolicyDocument=TRUST)
    assert str(raised.value) == ("iam CreateRole breaks botocore's model: RoleName: 65 characters, expected at "
                                 "most 64")
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["r" * 64]


def test_patterns_enums_and_nested_members_are_checked_with_their_path(moto):
    ecs = boto3.client("ecs", region_name=REGION)
    with pytest.raises(ModelViolation, match=r"ecs RunTask breaks botocore's model: launchType: 'SPOT', expected one "
                                             r"of EC2, FARGATE"):
        ecs.run_task(taskDefinition="t", launchType="SPOT")
    with pytest.raises(ModelViolation, match=r"iam CreateRole breaks botocore's model: Tags\[0\].Key: 'a\*b', expected "
                                             r"a match of the pattern"):
        boto3.client("iam", region_name=REGION).create_role(RoleName="r", AssumeRolePolicyDocument=TRUST,
                                                            Tags=[{"Key": "a*b", "Value": "v"}])


def test_what_botocore_checks_itself_is_left_to_it():
    """Minimums, types and required members are botocore's own validation's; a valid call has none."""
    model = botocore.session.get_session().get_service_model("sqs").operation_model("CreateQueue")
    assert list(violations({"QueueName": "q", "Attributes": {"DelaySeconds": "0"}}, model.input_shape, "")) == []
