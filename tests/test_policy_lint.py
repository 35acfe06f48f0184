"""Every IAM policy setup-pipe renders (launcher, task and execution roles, and their trust
policies), for a single_run and a sequence_run, linted by parliament (a real IAM policy linter,
with its community auditors) and checked for `Resource: "*"`.

A finding fails the test unless it is in ALLOWED, keyed by (role kind, finding, action) with the
reason: no finding class is ignored as a whole.
"""
import json
import warnings

import pytest
from helpers import record_algorithm, single_run

from yunpipe.engine import compiler
from yunpipe.engine.target import Target
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.specs.workflow import parse_workflow

with warnings.catch_warnings():
    # parliament 1.6 loads its data with pkg_resources, which newer setuptools deprecates.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", UserWarning)
    import parliament

TARGET = Target("123456789012", "us-east-1", ("subnet-1",), ("sg-1",))
ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1"

ALLOWED = {
    # The ECS agent logs in to ECR to pull a private image; GetAuthorizationToken has no
    # resource-level permission (its resource must be "*"), and the token only works on the
    # repositories the PullImage statement names.
    ("execution", "CREDENTIALS_EXPOSURE", "ecr:getauthorizationtoken"):
        "pulling from ECR needs a registry token",
    # RunTask passes the task and execution roles to ECS: PassRole is scoped to exactly those two
    # role ARNs, with iam:PassedToService = ecs-tasks.amazonaws.com.
    ("launcher", "PERMISSIONS_MANAGEMENT_ACTIONS", "iam:passrole"):
        "RunTask needs to pass the step's own two roles",
    # ListTasks is authorised on a container instance only when the call names one; listing a
    # cluster's tasks (Fargate has no container instances) is authorised on "*", and the
    # ecs:cluster condition (asserted below) scopes it to the pipeline's cluster. See
    # github.com/cdklabs/construct-hub/pull/1207 and widdix/complete-aws-iam-reference#74.
    ("launcher", "RESOURCE_STAR", "ecs:ListTasks"):
        "ListTasks of a cluster is authorised on *, scoped by ecs:cluster",
}
# Actions for which AWS accepts no resource but "*", each with the condition that scopes it.
STAR_ACTIONS = {"ecr:GetAuthorizationToken": None, "ecs:ListTasks": "ecs:cluster"}
# A trust policy has no Resource by definition (IAM rejects one): parliament, which reads every
# document as an identity policy, says so. It is the only finding a trust policy may have.
TRUST_NO_RESOURCE = ("MALFORMED", "Statement contains neither Resource nor NotResource")


def compile_model(document, target=TARGET, use_user_credential=False):
    workflow = resolve_workflow(parse_workflow(document, "workflow.json"), AlgorithmRegistry())
    return compiler.build_model(workflow, target, use_user_credential)


def roles(model):
    for step in model.steps:
        yield "launcher", step.launcher_role
        yield "task", step.task_role
        yield "execution", step.execution_role


def lint(document, community=True):
    policy = parliament.analyze_policy_string(json.dumps(document), include_community_auditors=community)
    return policy.findings


def finding_actions(finding):
    """The actions a finding is about; None for a finding about the document as a whole."""
    if isinstance(finding.detail, list):
        return [item["action"] if isinstance(item, dict) else item for item in finding.detail]
    if isinstance(finding.location, dict) and finding.location.get("actions"):
        return finding.location["actions"]
    if isinstance(finding.location, dict) and finding.location.get("string"):
        return [finding.location["string"]]
    return [None]


def unexplained(kind, findings):
    return [(finding.issue, action, finding.detail) for finding in findings for action in finding_actions(finding)
            if (kind, finding.issue, action) not in ALLOWED]


def statements(policy):
    return policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]


def as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.fixture
def models(aws_env):
    """A single_run with user credentials as SSM parameters (so ReadUserCredentials is there
    too), one with secrets of its algorithm and its step (ReadSecretParameters, ReadSecrets), a
    single_run from ECR and a three-step sequence_run mixing ECR and other images."""
    record_algorithm("change123-s3", "user/change123-s3:1")
    record_algorithm("ecr-algo", ECR_IMAGE, variables=[])
    for name in ("step-a", "step-b"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    credentials = Target(TARGET.account_id, TARGET.region, TARGET.subnets, TARGET.security_groups,
                           {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    sequence = {"name": "seq", "input_s3_name": "seq-in-bucket", "output_s3_name": "seq-out-bucket",
                "notify": ["someone@example.org"],  # the task and launcher roles may publish to the topic
                "process": {"type": "sequence_run",
                            "algorithms": [{"name": "step-a"}, {"name": "ecr-algo"}, {"name": "step-b"}]}}
    record_algorithm("secret-algo", "user/secret-algo:1", variables=[], secrets=[
        {"name": "API_KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf:token::"},
        {"name": "DB_PASSWORD", "valueFrom": "/lab/db-password"}])
    return {
        "single_run": compile_model(single_run(), credentials, use_user_credential=True),
        "single_run_secrets": compile_model(single_run(algorithm="secret-algo", process={
            "type": "single_run", "algorithms": [{"name": "secret-algo", "secrets": [
                {"name": "LICENSE", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/license"}]}]})),
        "single_run_ecr": compile_model(single_run(algorithm="ecr-algo", process={
            "type": "single_run", "algorithms": [{"name": "ecr-algo"}]})),
        "sequence_run": compile_model(sequence),
    }


def test_every_role_policy_lints_clean(models):
    linted = 0
    for name, model in models.items():
        for kind, role in roles(model):
            assert unexplained(kind, lint(role.policy)) == [], f"{name}: {role.name}"
            linted += 1
    assert linted == 3 * (1 + 1 + 1 + 3)


def test_every_trust_policy_lints_clean(models):
    for model in models.values():
        for kind, role in roles(model):
            findings = [(f.issue, f.detail) for f in lint(role.trust_policy)]
            assert findings == [TRUST_NO_RESOURCE], role.name
            # With the role as its resource, parliament checks the action and that it applies
            # to a role ARN. (Without the community auditors, which read sts:AssumeRole in an
            # identity policy as a credentials exposure: here a service assumes the role.)
            with_resource = {**role.trust_policy, "Statement": [
                {**s, "Resource": role.arn} for s in statements(role.trust_policy)]}
            assert [(f.issue, f.detail) for f in lint(with_resource, community=False)] == [], role.name
            principals = [s["Principal"] for s in statements(role.trust_policy)]
            service = "lambda.amazonaws.com" if kind == "launcher" else "ecs-tasks.amazonaws.com"
            assert principals == [{"Service": service}], role.name


def test_resource_star_only_where_aws_accepts_nothing_else(models):
    for model in models.values():
        for _kind, role in roles(model):
            for statement in statements(role.policy):
                if "*" not in as_list(statement["Resource"]):
                    continue
                assert as_list(statement["Resource"]) == ["*"], role.name
                for action in as_list(statement["Action"]):
                    assert action in STAR_ACTIONS, f"{role.name}: {action} on *"
                    key = STAR_ACTIONS[action]
                    if key:
                        values = [v for operator in statement["Condition"].values() for k, v in operator.items() if k == key]
                        assert values == [model.cluster.arn], f"{role.name}: {action} on * without {key}"


def test_the_topic_policy_lints_clean_and_lets_only_the_pipelines_roles_publish(models):
    model = models["sequence_run"]
    [topic] = model.topic
    assert [(f.issue, f.detail) for f in lint(topic.policy)] == []
    publish = next(s for s in statements(topic.policy) if s["Effect"] == "Allow")
    assert publish["Principal"]["AWS"] == [r.arn for s in model.steps for r in (s.task_role, s.launcher_role)]
    assert (publish["Action"], publish["Resource"]) == ("sns:Publish", topic.arn)
    for kind, role in roles(model):
        published = [s["Resource"] for s in statements(role.policy) if "sns:Publish" in as_list(s["Action"])]
        assert published == ([] if kind == "execution" else [topic.arn]), role.name


def test_an_ecr_image_scopes_the_pull_to_its_repository(models):
    execution = models["single_run_ecr"].steps[0].execution_role.policy
    pull = next(s for s in statements(execution) if s["Sid"] == "PullImage")
    assert pull["Resource"] == "arn:aws:ecr:us-east-1:123456789012:repository/algo"
    assert sorted(pull["Action"]) == ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert [f.issue for f in lint(execution) if f.issue in ("RESOURCE_MISMATCH", "RESOURCE_STAR")] == []
    # In a sequence, each step's execution role reaches only its own image's repository.
    sequence = models["sequence_run"]
    pulls = [[s.get("Resource") for s in statements(step.execution_role.policy) if s["Sid"] == "PullImage"]
             for step in sequence.steps]
    assert pulls == [[], ["arn:aws:ecr:us-east-1:123456789012:repository/algo"], []]


def test_an_image_outside_ecr_gets_no_ecr_permission(models):
    execution = models["single_run"].steps[0].execution_role.policy
    assert not [a for s in statements(execution) for a in as_list(s["Action"]) if a.startswith("ecr:")]
    assert [s["Sid"] for s in statements(execution)] == ["WriteLogs", "ReadUserCredentials"]


@pytest.mark.parametrize("image, arn", [
    (ECR_IMAGE, "arn:aws:ecr:us-east-1:123456789012:repository/algo"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/algo@sha256:" + "0" * 64,
     "arn:aws:ecr:eu-west-1:123456789012:repository/team/algo"),
    ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/algo:2",
     "arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/algo"),
    ("123456789012.dkr-ecr.us-east-1.on.aws/algo:1", "arn:aws:ecr:us-east-1:123456789012:repository/algo"),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/algo:1", "arn:aws-cn:ecr:cn-north-1:123456789012:repository/algo"),
    ("user/change123-s3:1", None),
    ("public.ecr.aws/lab/algo:1", None),
    ("127.0.0.1:5000/algo:1", None),
])
def test_ecr_repository_of_an_image(image, arn):
    assert compiler._ecr_repository_arn(image, TARGET) == arn


@pytest.mark.parametrize("mutation, issue", [
    # The linter run here does catch what this test guards against.
    ({"Action": "sqs:SendMessageBatch"}, "UNKNOWN_ACTION"),
    ({"Resource": "arn:aws:s3:::demo-in-bucket"}, "RESOURCE_MISMATCH"),
    ({"Resource": "*"}, "RESOURCE_STAR"),
])
def test_the_linter_reports_what_these_tests_forbid(models, mutation, issue):
    task = models["single_run"].steps[0].task_role
    policy = {**task.policy, "Statement": [{**statements(task.policy)[0], **mutation}]}
    assert issue in [finding[0] for finding in unexplained("task", lint(policy))]
