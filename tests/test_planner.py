"""Plans as data: what the planner asks for against an empty account, an offline one, and a
bucket with notifications of its own."""
import boto3
from helpers import single_run

from yunpipe.aws.facade import Aws, watch_calls
from yunpipe.aws.reader import Reader
from yunpipe.engine import compiler
from yunpipe.engine import model as m
from yunpipe.engine.plan import Ref
from yunpipe.engine.planner import Planner
from yunpipe.engine.target import Target
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.specs.workflow import parse_workflow

TARGET = Target("123456789012", "us-east-1", ("subnet-1",), ("sg-1",))


def demo_model(**extra):
    workflow = resolve_workflow(parse_workflow(single_run(**extra), "workflow.json"), AlgorithmRegistry())
    return compiler.build_model(workflow, TARGET)


def test_empty_account_plan(moto, change123):
    plan = Planner(Reader(Aws(boto3.Session()))).plan(demo_model())
    operations = [c.operation for c in plan.calls]
    assert operations.index("create_role") < operations.index("create_function")
    assert operations.index("add_permission") < operations.index("put_bucket_notification_configuration")
    assert {c.action for c in plan.calls} <= {"create", "update"}
    queue = next(c for c in plan.calls if c.operation == "create_queue" and c.key.endswith("-queue"))
    assert queue.outputs == (("queue_url:yunpipe-demo-change123-s3-queue", "QueueUrl"),)
    register = next(c for c in plan.calls if c.operation == "register_task_definition")
    environment = {e["name"]: e["value"] for e in register.params["containerDefinitions"][0]["environment"]}
    assert environment["YUNPIPE_QUEUE_URL"] == Ref("queue_url:yunpipe-demo-change123-s3-queue")
    assert {"key": m.SPEC_TAG_KEY, "value": demo_model().steps[0].task_definition.spec_hash} in register.params["tags"]
    function = next(c for c in plan.calls if c.operation == "create_function")
    assert function.params["Environment"]["Variables"]["YUNPIPE_QUEUE_URL"] == Ref(
        "queue_url:yunpipe-demo-change123-s3-queue")
    assert function.retry_on  # a new role takes a moment to become assumable


def test_offline_plans_everything_without_a_call(aws_env, change123):
    with watch_calls() as calls:
        plan = Planner(Reader(Aws(boto3.Session(region_name="us-east-1")), offline=True)).plan(demo_model())
    assert calls == []
    created = {(c.kind, c.key) for c in plan.calls if c.action == "create"}
    assert created == demo_model().keys()


def test_notification_is_merged_into_the_buckets_own(moto, change123):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="demo-in-bucket")
    topic = boto3.client("sns", region_name="us-east-1").create_topic(Name="theirs")["TopicArn"]
    theirs = {"Id": "theirs", "TopicArn": topic, "Events": ["s3:ObjectRemoved:*"]}
    s3.put_bucket_notification_configuration(Bucket="demo-in-bucket",
                                             NotificationConfiguration={"TopicConfigurations": [theirs]})
    plan = Planner(Reader(Aws(boto3.Session()))).plan(demo_model(filter={"prefix": "in/"}))
    bucket_calls = [c for c in plan.calls if c.params.get("Bucket") == "demo-in-bucket"]
    # An existing bucket is not created, tagged or reconfigured: only the notification is added.
    assert [c.operation for c in bucket_calls] == ["put_bucket_notification_configuration"]
    configuration = bucket_calls[0].params["NotificationConfiguration"]
    assert configuration["TopicConfigurations"][0]["Id"] == "theirs"
    assert configuration["LambdaFunctionConfigurations"] == [{
        "Id": "yunpipe:demo:change123-s3", "Events": ["s3:ObjectCreated:*"],
        "LambdaFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:yunpipe-demo-change123-s3-launcher",
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}}]


def test_an_existing_cluster_gets_fargate_spot_keeping_its_own_providers_and_default_strategy(moto, change123):
    default = [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
    boto3.client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")  # an account that used ECS
    moto.clock.sleep(moto.service_linked_role_propagation_seconds)
    boto3.client("ecs").create_cluster(clusterName="yunpipe-demo", capacityProviders=["FARGATE"],
                                       defaultCapacityProviderStrategy=default)
    document = single_run()
    document["process"]["algorithms"][0]["capacity"] = "FARGATE_SPOT"
    spot = compiler.build_model(resolve_workflow(parse_workflow(document, "workflow.json"), AlgorithmRegistry()), TARGET)

    calls = [c for c in Planner(Reader(Aws(boto3.Session()))).plan(spot).calls if c.kind == "cluster_capacity_providers"]
    plain = [c for c in Planner(Reader(Aws(boto3.Session()))).plan(demo_model()).calls if c.kind == "cluster_capacity_providers"]

    assert [(c.operation, c.action) for c in calls] == [("put_cluster_capacity_providers", "update")]
    assert calls[0].params == {"cluster": "yunpipe-demo", "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
                               "defaultCapacityProviderStrategy": default}
    # A pipeline without Spot leaves the cluster as it is.
    assert plain == []
