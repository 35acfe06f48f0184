"""`yunpipe export --format cloudformation`: the model as a CloudFormation template, checked by
cfn-lint (AWS's own resource schemas) for every example workflow and a worst case, created as a
stack by moto's CloudFormation, and its bad inputs."""
import json
from pathlib import Path

import boto3
import pytest
import yaml
from cfnlint.api import lint
from helpers import REGION
from moto import mock_aws

from yunpipe import cli
from yunpipe.engine import compiler
from yunpipe.engine.cloudformation import MAX_DESCRIPTION, render
from yunpipe.engine.kinds import KINDS
from yunpipe.engine.target import Target
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.runtime.contract import LauncherConfig
from yunpipe.runtime.launcher.clients import clients_for
from yunpipe.runtime.launcher.handler import handle
from yunpipe.specs.algorithm import load_algorithm
from yunpipe.specs.workflow import parse_workflow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DOCUMENTS = {path: json.loads(path.read_text()) for path in sorted(EXAMPLES.glob("*/*.json"))}
EXAMPLE_WORKFLOWS = [str(p) for p, d in DOCUMENTS.items() if "process" in d]
ALGORITHMS = [p for p, d in DOCUMENTS.items() if "process" not in d]
# 24 characters: the longest pipeline name and step id a workflow may have; 63: the longest bucket name.
LONG = "a" * 20 + "-xyz"
SUBNETS = ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")
TARGET = Target("123456789012", REGION, SUBNETS, ("sg-0123456789abcdef0",),
                {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-rendered-secret"})


def worst_case(subnets=SUBNETS, security_groups=("sg-0123456789abcdef0",)) -> dict:
    """Longest names; a fan-out (two steps read the input bucket), a join, a gather with a
    marker; a Spot step, a GPU step and a CPU step on EC2 instances; notified of its runs."""
    def step(prefix: str, name: str, **extra) -> dict:
        return {"id": (prefix + "-" + LONG)[:24], "name": name, **extra}
    return {"name": LONG, "input_s3_name": "in-" + "b" * 60, "output_s3_name": "out-" + "c" * 59,
            "subnets": list(subnets), "security_groups": list(security_groups),
            "notify": ["someone@example.org", "https://hooks.example.org/yunpipe",
                       "arn:aws:sqs:us-east-1:123456789012:lab-events"],
            "process": {"type": "graph", "steps": [
                step("upper", "uppercase", capacity="FARGATE_SPOT", filter={"suffix": ".txt"}),
                step("gpu", "change123-s3", variables={"TEST_ENV": "x"}, instance_type="g4dn.xlarge", gpu=1),
                step("count", "wordcount", instance_type="m5.large", after=[("gpu-" + LONG)[:24]]),
                step("join", "change123-s3", variables={"TEST_ENV": "y"},
                     after=[("upper-" + LONG)[:24], ("count-" + LONG)[:24]]),
                step("all", "uppercase", after=[("join-" + LONG)[:24]], gather=True, marker="_DONE")]}}


@pytest.fixture
def examples(aws_env):
    """Every example algorithm, recorded as its first version."""
    registry = AlgorithmRegistry()
    for path in ALGORITHMS:
        registry.record(load_algorithm(path), f"user/{path.stem}:1")
    return registry


def lint_errors(text: str) -> list[str]:
    """cfn-lint's errors and warnings (informational findings are off by default), one line each."""
    return [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in lint(text, regions=[REGION])]


def test_the_examples_and_a_worst_case_pass_cfn_lint(examples, tmp_path):
    """Zero errors and zero warnings from cfn-lint, one lint per template, in this process."""
    assert EXAMPLE_WORKFLOWS, "no example workflow found"
    documents = [(path, json.loads(Path(path).read_text())) for path in EXAMPLE_WORKFLOWS]
    documents.append(("worst-case.json", worst_case()))
    for source, document in documents:
        model = compiler.build_model(resolve_workflow(parse_workflow(document, source), examples), TARGET, True)
        text = render(model).text
        assert lint_errors(text) == [], source
        assert "not-rendered-secret" not in text and "AKIDEXAMPLE" not in text


def test_the_worst_case_renders_every_resource_kind_and_says_what_it_cannot(examples):
    model = compiler.build_model(resolve_workflow(parse_workflow(worst_case(), "w.json"), examples), TARGET, True)
    rendering = render(model)
    document = yaml.safe_load(rendering.text)
    kinds = {r.kind for r in model.resources()}
    assert kinds == {kind.name for kind in KINDS}, "the worst case lacks a kind"
    types = {r["Type"] for r in document["Resources"].values()}
    assert {"AWS::ECS::CapacityProvider", "AWS::ECS::ClusterCapacityProviderAssociations",
            "AWS::AutoScaling::AutoScalingGroup", "AWS::EC2::LaunchTemplate",
            "AWS::IAM::InstanceProfile", "AWS::Events::Rule", "AWS::Lambda::Permission", "AWS::SNS::Topic",
            "AWS::SNS::TopicPolicy"} <= types
    # Neither the account's service-linked roles nor SecureString parameters are in the stack.
    assert not types & {"AWS::IAM::ServiceLinkedRole", "AWS::SSM::Parameter"}
    notes = "\n".join(rendering.notes)
    assert "no rendering" not in notes
    for expected in ("AWSServiceRoleForECS", "AWSServiceRoleForAutoScaling", "--type SecureString",
                     "LauncherCodeBucket", "CAPABILITY_NAMED_IAM", "--template-url"):
        assert expected in notes
    assert len(document["Description"]) <= MAX_DESCRIPTION
    assert document["Metadata"]["Yunpipe"]["BeforeCreate"] == list(rendering.notes)
    # The fan-out's bucket sends its events to EventBridge; each chain step's source notifies its launcher.
    input_bucket = document["Resources"][_logical(document, "AWS::S3::Bucket", model.input_bucket)]
    assert input_bucket["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    # An S3 object has no CloudFormation resource: the accounting descriptor is a file to copy.
    assert list(rendering.files) == ["accounting.json",
                                     f"yunpipe-launcher-{model.steps[0].function.code_sha256_hex[:16]}.zip"]
    assert json.loads(rendering.files["accounting.json"])["pipeline"] == model.name
    assert f"s3://{model.reports_bucket}/pipelines/{model.name}/accounting.json" in notes
    # The topic holds its subscriptions; its policy, naming the publishing roles, waits for them (SNS checks).
    [(topic_id, topic)] = [(k, r) for k, r in document["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    assert topic["Properties"]["Subscription"] == [{"Protocol": s.protocol, "Endpoint": s.endpoint}
                                                   for s in model.subscriptions]
    [policy] = [r for r in document["Resources"].values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    publishers = [r for s in model.steps for r in (s.task_role, s.launcher_role)]
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    assert sorted(policy["DependsOn"]) == sorted(
        next(k for k, r in document["Resources"].items() if r["Type"] == "AWS::IAM::Role"
             and r["Properties"]["RoleName"] == role.name) for role in publishers)


def _logical(document: dict, type_: str, name: str) -> str:
    names = {"AWS::S3::Bucket": "BucketName", "AWS::Lambda::Function": "FunctionName", "AWS::SQS::Queue": "QueueName",
             "AWS::ECS::Cluster": "ClusterName"}
    return next(logical for logical, r in document["Resources"].items()
                if r["Type"] == type_ and r["Properties"][names[type_]] == name)


@pytest.mark.parametrize("workflow", EXAMPLE_WORKFLOWS)
def test_export_of_each_example_exits_0_and_writes_the_launcher_next_to_the_template(
        moto, examples, workflow, tmp_path, capsys):
    output = tmp_path / "out" / "pipeline.yaml"
    assert cli.main(["export", "-f", workflow, "--format", "cloudformation", "-o", str(output)]) == 0
    document = yaml.safe_load(output.read_text())
    code = document["Parameters"]["LauncherCodeKey"]["Default"]
    assert (output.parent / code).read_bytes()[:2] == b"PK"
    assert "Before creating the stack:" in capsys.readouterr().out
    # The same template on stdout.
    assert cli.main(["export", "-f", workflow]) == 0
    assert capsys.readouterr().out == output.read_text()


def test_export_without_aws_says_the_account_is_a_placeholder(examples, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main(["export", "-f", EXAMPLE_WORKFLOWS[0], "--endpoint-url", "http://127.0.0.1:9"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["Metadata"]["Yunpipe"]["Account"] == "000000000000"
    assert any("AWS was not reachable" in note for note in document["Metadata"]["Yunpipe"]["BeforeCreate"])


def test_export_of_a_pipeline_renders_the_workflow_it_was_set_up_from(moto, examples, write_workflow, tmp_path,
                                                                       capsys):
    document = {"name": "recorded", "input_s3_name": "recorded-in", "output_s3_name": "recorded-out",
                "process": {"type": "sequence_run", "algorithms": [{"name": "uppercase"}, {"name": "wordcount"}]}}
    path = write_workflow(document)
    assert cli.setup_pipe_main(["-f", path]) == 0
    assert cli.main(["export", "-f", path, "-o", str(tmp_path / "file.yaml")]) == 0
    # A newer version of one algorithm, and the file changed: the pipeline's own record still says what it runs.
    examples.record(load_algorithm(EXAMPLES / "uppercase" / "uppercase.json"), "user/uppercase:2")
    Path(path).write_text(json.dumps({**document, "process": {"type": "single_run",
                                                              "algorithms": [{"name": "uppercase"}]}}))
    assert cli.main(["export", "recorded", "-o", str(tmp_path / "pipeline.yaml")]) == 0
    assert (tmp_path / "pipeline.yaml").read_text() == (tmp_path / "file.yaml").read_text()


@pytest.mark.parametrize(("arguments", "expected"), [
    (["export", "-f", "{tmp}/missing.json"], "missing.json: file not found"),
    (["export", "-f", "{bad}"], "workflow.json: process.algorithms[0].concurrency: expected"),
    (["export", "nowhere"], "no pipeline 'nowhere' set up from this machine"),
    (["export", "nowhere", "-uu"], "export: -uu: expected -uu only with -f"),
])
def test_bad_input_exits_2_naming_the_file_and_field(examples, write_workflow, tmp_path, capsys, arguments, expected):
    bad = write_workflow({"input_s3_name": "bad-in", "output_s3_name": "bad-out",
                          "process": {"type": "single_run", "algorithms": [{"name": "uppercase", "concurrency": 0}]}})
    argv = [a.format(tmp=tmp_path, bad=bad) for a in arguments]
    assert cli.main(argv) == 2
    assert expected in capsys.readouterr().err
    assert list(tmp_path.glob("*.yaml")) == []


def test_export_takes_a_file_or_a_pipeline_not_both(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["export", "-f", "workflow.json", "pipeline"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def _create_stack(text: str, files: dict[str, bytes]) -> list[dict]:
    """The template as stack "exported", read from S3 as a large one must be, its launcher's zip beside
    it; the stack's resources as moto lists them."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="launcher-code")
    for name, data in {**files, "template.yaml": text.encode()}.items():
        s3.put_object(Bucket="launcher-code", Key=name, Body=data)
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(StackName="exported", TemplateURL="https://launcher-code.s3.amazonaws.com/template.yaml",
                                Capabilities=["CAPABILITY_NAMED_IAM"],
                                Parameters=[{"ParameterKey": "LauncherCodeBucket", "ParameterValue": "launcher-code"}])
    stack = cloudformation.describe_stacks(StackName="exported")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return cloudformation.list_stack_resources(StackName="exported")["StackResourceSummaries"]


@pytest.fixture
def moto_cloudformation(aws_env):
    """moto in this process, without the strict layer: CloudFormation itself waits out what the
    layer refuses to a direct caller (a role Lambda cannot assume yet, S3 not yet seeing a permission)."""
    with mock_aws():
        yield


def test_moto_creates_the_stack_and_its_launcher_queues_a_file_and_starts_a_task(moto_cloudformation, examples,
                                                                                  tmp_path):
    """The example's template as a stack on moto's CloudFormation, then one uploaded file through its
    launcher: the launcher's code and settings as the stack made them (queue URL and task definition
    by Ref), run in this process on the S3 event, queue the file and start a task in the stack's
    cluster.

    What moto cannot: its AWS::S3::Bucket ignores NotificationConfiguration (and
    PublicAccessBlockConfiguration), so an upload never invokes the launcher and the event is handed
    to it here; it has no AWS::Lambda::EventInvokeConfig (skipped with a warning); its Lambda does
    not run the zip (the launcher runs in this process), and its ECS runs no container, so the file
    stops at a started task (tests/e2e runs the worker for real)."""
    output = tmp_path / "pipeline.yaml"
    assert cli.main(["export", "-f", EXAMPLE_WORKFLOWS[0], "-o", str(output)]) == 0
    document = yaml.safe_load(output.read_text())
    code = document["Parameters"]["LauncherCodeKey"]["Default"]
    with pytest.warns(UserWarning, match="AWS::Lambda::EventInvokeConfig but it's not supported"):
        listed = _create_stack(output.read_text(), {code: (tmp_path / code).read_bytes()})
    resources = {r["LogicalResourceId"]: r for r in listed if r["LogicalResourceId"]}
    assert set(resources) == {logical for logical, r in document["Resources"].items()
                              if r["Type"] != "AWS::Lambda::EventInvokeConfig"}

    [name] = [r["Properties"]["FunctionName"] for r in document["Resources"].values()
              if r["Type"] == "AWS::Lambda::Function"]
    function = boto3.client("lambda", region_name=REGION).get_function(FunctionName=name)
    assert function["Concurrency"]["ReservedConcurrentExecutions"] == 1
    environment = function["Configuration"]["Environment"]["Variables"]
    config = LauncherConfig.from_env(environment)
    queue_name = config.queue_url.rsplit("/", 1)[-1]
    assert resources[_logical(document, "AWS::SQS::Queue", queue_name)]["PhysicalResourceId"] == config.queue_url

    input_bucket = document["Outputs"]["InputBucket"]["Value"]["Ref"]
    bucket = document["Resources"][input_bucket]["Properties"]["BucketName"]
    s3 = boto3.client("s3", region_name=REGION)
    etag = s3.put_object(Bucket=bucket, Key="one.txt", Body=b"hello")["ETag"].strip('"')
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": REGION,
                          "s3": {"bucket": {"name": bucket}, "object": {"key": "one.txt", "size": 5, "eTag": etag}}}]}
    summary = handle(event, config, clients_for(REGION, None), sleep=lambda _seconds: None)
    assert (summary["enqueued"], summary["started"]) == (1, 1), summary
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=config.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["key"] for m in messages] == ["one.txt"]
    ecs = boto3.client("ecs", region_name=REGION)
    tasks = ecs.describe_tasks(cluster=config.cluster,
                               tasks=ecs.list_tasks(cluster=config.cluster)["taskArns"])["tasks"]
    assert [t["taskDefinitionArn"].rsplit("/", 1)[-1].split(":")[0] for t in tasks] == [config.task_definition]


def test_moto_creates_the_worst_case_stack_but_for_its_capacity_providers(moto_cloudformation, examples):
    """The worst case (Spot, GPU and CPU steps on EC2, fan-out, join, gather) as a stack on moto's
    CloudFormation, in moto's default VPC. What moto cannot: it has no AWS::ECS::CapacityProvider,
    AWS::ECS::ClusterCapacityProviderAssociations, AWS::Lambda::EventInvokeConfig nor AWS::SNS::TopicPolicy (each skipped
    with a warning, so the stack is
    complete without them, and the cluster has no providers); its S3 buckets ignore
    NotificationConfiguration. Everything else is created under the model's names. This test fails
    when moto learns them: then assert them here."""
    ec2 = boto3.client("ec2", region_name=REGION)
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    workflow = resolve_workflow(parse_workflow(worst_case(subnets, [group]), "worst-case.json"), examples)
    model = compiler.build_model(workflow, Target("123456789012", REGION, tuple(subnets), (group,)))
    rendering = render(model)
    document = yaml.safe_load(rendering.text)
    lacking = {"AWS::ECS::CapacityProvider", "AWS::ECS::ClusterCapacityProviderAssociations",
               "AWS::Lambda::EventInvokeConfig", "AWS::SNS::TopicPolicy"}
    with pytest.warns(UserWarning, match="not supported by moto's CloudFormation") as warned:
        listed = _create_stack(rendering.text, dict(rendering.files))
    assert {str(w.message).split()[3] for w in warned} == lacking
    skipped = {logical for logical, r in document["Resources"].items() if r["Type"] in lacking}
    # moto lists each resource it skipped without a logical id.
    resources = {r["LogicalResourceId"]: r for r in listed if r["LogicalResourceId"]}
    assert len(listed) - len(resources) == len(skipped) == 4 + len(model.steps)  # one invoke config per step
    assert set(resources) == set(document["Resources"]) - skipped
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in resources.values())
    ecs = boto3.client("ecs", region_name=REGION)
    [cluster] = ecs.describe_clusters(clusters=[model.cluster.name])["clusters"]
    assert not cluster.get("capacityProviders")
    names = [g.capacity_provider.name for g in model.instance_groups]
    assert ecs.describe_capacity_providers(capacityProviders=names)["capacityProviders"] == []
    groups = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups()["AutoScalingGroups"]
    assert sorted(g["AutoScalingGroupName"] for g in groups) == sorted(g.auto_scaling_group.name
                                                                        for g in model.instance_groups)
    # The topic, with its subscriptions (part of its resource).
    sns = boto3.client("sns", region_name=REGION)
    assert sorted((s["Protocol"], s["Endpoint"]) for s in sns.list_subscriptions_by_topic(
        TopicArn=model.topic_arn)["Subscriptions"]) == sorted((s.protocol, s.endpoint) for s in model.subscriptions)
    rules = boto3.client("events", region_name=REGION).list_rules(NamePrefix=f"yunpipe-{model.name}-")["Rules"]
    assert sorted(r["Name"] for r in rules) == sorted(r.name for s in model.steps for r in (*s.event_rules, s.rule))
