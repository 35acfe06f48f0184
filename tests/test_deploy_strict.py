"""The deploy engine against AWS's own rules (tests/strict_aws.py), each rule met by setup-pipe
and clean-up through the command line. Every deploy test's `moto` is strict; these tests put
each rule where it bites and check the engine got through it the way AWS wants."""
import concurrent.futures
import json
import threading

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers import REGION, foreign_notification, record_algorithm, single_run
from moto import mock_aws
from strict_aws import Clock, StrictAws

from yunpipe import cli
from yunpipe.aws.facade import is_mutating, watch_calls
from yunpipe.engine import executor
from yunpipe.engine.state import state_path
from yunpipe.runtime.launcher import handler as launcher
from yunpipe.runtime.launcher.clients import clients_for, clients_from_env

LAUNCHER = "yunpipe-demo-change123-s3-launcher"


def client(service):
    return boto3.client(service, region_name=REGION)


def tagged(pipeline="demo"):
    return client("resourcegroupstaggingapi").get_resources(
        TagFilters=[{"Key": "yunpipe:pipeline", "Values": [pipeline]}])["ResourceTagMappingList"]


def sequence(name: str, algorithms: list[str]) -> dict:
    return {"name": name, "input_s3_name": f"{name}-in-bucket", "output_s3_name": f"{name}-out-bucket",
            "process": {"type": "sequence_run", "algorithms": [{"name": a, "variables": {"TEST_ENV": "x"}}
                                                                for a in algorithms]}}


def test_an_overlapping_notification_already_on_the_bucket_is_bad_input_and_nothing_is_created(
        moto, change123, write_workflow, capsys):
    """Planned, not discovered half-way: the old engine created 30 resources, then S3 refused."""
    s3 = client("s3")
    foreign_notification(moto, "demo-in-bucket", ["s3:ObjectCreated:Put"], [{"Name": "prefix", "Value": "data/"}])
    path = write_workflow(single_run(filter={"prefix": "data/2026/"}))
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}: filter: expected a prefix/suffix that does not overlap notification 'theirs'" in err
    assert [c for c in calls if is_mutating(c[1])] == []
    assert tagged() == [] and not state_path("demo").exists()
    assert not moto.rules_fired()

    # A prefix of its own is fine, and the bucket keeps their entry.
    path = write_workflow(single_run(filter={"prefix": "results/"}))
    assert cli.setup_pipe_main(["-f", path]) == 0
    entries = s3.get_bucket_notification_configuration(Bucket="demo-in-bucket")["LambdaFunctionConfigurations"]
    assert sorted(e["Id"] for e in entries) == ["theirs", "yunpipe:demo:change123-s3"]


def test_notifications_come_after_their_permissions_in_setup_and_before_them_in_clean_up(moto, change123,
                                                                                          write_workflow):
    with watch_calls() as setup:
        assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    with watch_calls() as clean_up:
        assert cli.clean_up_main(["demo", "--purge"]) == 0
    created, deleted = ([operation for _, operation in calls if is_mutating(operation)] for calls in (setup, clean_up))
    assert created.index("AddPermission") < created.index("PutBucketNotificationConfiguration")
    assert deleted.index("PutBucketNotificationConfiguration") < deleted.index("RemovePermission")
    assert "s3-unvalidated-destination" not in moto.rules_fired()


def test_setup_waits_until_lambda_can_assume_the_new_launcher_role(moto, change123, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    # AWS refused the first CreateFunction; the engine backed off until the role was assumable.
    assert "lambda-role-not-assumable-yet" in moto.rules_fired()
    assert moto.clock.time() >= moto.role_propagation_seconds
    assert client("lambda").get_function(FunctionName=LAUNCHER)["Configuration"]["Role"].endswith("launcher-role")


def test_setup_right_after_clean_up_waits_out_the_60_seconds_sqs_keeps_a_deleted_name(moto, change123,
                                                                                   write_workflow):
    path = write_workflow(single_run())
    assert cli.setup_pipe_main(["-f", path]) == 0
    assert cli.clean_up_main(["demo", "--purge"]) == 0
    cleaned_at = moto.clock.time()
    assert cli.setup_pipe_main(["-f", path]) == 0
    assert "sqs-queue-deleted-recently" in moto.rules_fired()
    assert moto.clock.time() - cleaned_at >= moto.queue_reuse_seconds
    assert client("sqs").get_queue_url(QueueName="yunpipe-demo-change123-s3-queue")["QueueUrl"]


def test_eventual_consistency_retries_give_up_after_the_budget(aws_env, change123, write_workflow, monkeypatch,
                                                               capsys):
    """A role that never becomes assumable ends setup-pipe with AWS's message, not a hang."""
    strict = StrictAws(clock=Clock(manual=True), role_propagation_seconds=10_000)
    monkeypatch.setattr(executor, "backoff_sleep", strict.clock.sleep)
    with mock_aws(), strict.active():
        assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 1
    assert "cannot be assumed by Lambda" in capsys.readouterr().err
    assert executor.RETRY_BUDGET_SECONDS <= strict.clock.time() <= executor.RETRY_BUDGET_SECONDS + 2 * \
        executor.RETRY_MAX_DELAY


def test_a_lasting_invalid_parameter_fails_at_once(moto, change123, write_workflow, capsys):
    """Only the role's "cannot be assumed" passes with time; any other invalid parameter of the
    same code is a mistake that waiting does not fix."""
    moto.clock.sleep(60)  # roles are assumable at once; time is only spent by backing off

    def invalid_runtime(service, operation):
        if operation == "CreateFunction":
            raise ClientError({"Error": {"Code": "InvalidParameterValueException",
                                         "Message": "The runtime parameter of python3.12 is not supported"}}, operation)

    started = moto.clock.time()
    with watch_calls(invalid_runtime):
        assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 1
    assert "runtime parameter" in capsys.readouterr().err
    assert moto.clock.time() == started


def test_a_request_between_fargate_sizes_is_rounded_up_and_the_plan_says_so(moto, aws_env, write_workflow, capsys):
    record_algorithm("small", "user/small:1", CPU=0.3, memory={"minimal": 100, "suggested": 700})
    path = write_workflow(single_run(algorithm="small"))
    assert cli.setup_pipe_main(["-f", path, "--dry-run"]) == 0
    assert ("register task definition yunpipe-demo-small-task (512 CPU units, 1024 MiB, user/small:1; rounded up "
            "from the 0.3 vCPU and 700 MiB small@1 asks for: Fargate offers only fixed cpu/memory pairs)"
            in capsys.readouterr().out)
    assert cli.setup_pipe_main(["-f", path]) == 0
    definition = client("ecs").describe_task_definition(taskDefinition="yunpipe-demo-small-task")["taskDefinition"]
    assert (definition["cpu"], definition["memory"]) == ("512", "1024")
    assert "ecs-fargate-size" not in moto.rules_fired()


@pytest.mark.parametrize("cpu, memory, expected", [(0.25, 512, ("256", "512")), (1, 2048, ("1024", "2048")),
                                                   (2, 17000, ("4096", "17408")), (9, 16384, ("16384", "32768"))])
def test_every_request_becomes_a_size_fargate_accepts(moto, aws_env, write_workflow, cpu, memory, expected):
    record_algorithm("sized", "user/sized:1", CPU=cpu, memory={"minimal": 1, "suggested": memory})
    assert cli.setup_pipe_main(["-f", write_workflow(single_run(algorithm="sized"))]) == 0
    definition = client("ecs").describe_task_definition(taskDefinition="yunpipe-demo-sized-task")["taskDefinition"]
    assert (definition["cpu"], definition["memory"]) == expected


def test_ephemeral_storage_of_the_workflow_and_of_a_step_reaches_the_task_definitions(moto, aws_env, write_workflow,
                                                                                       capsys):
    record_algorithm("first", "user/first:1")
    record_algorithm("second", "user/second:1")
    document = sequence("demo", ["first", "second"])
    document["ephemeral_storage_gib"] = 50
    document["process"]["algorithms"][1]["ephemeral_storage_gib"] = 200
    assert cli.setup_pipe_main(["-f", write_workflow(document)]) == 0
    assert "50 GiB of storage" in capsys.readouterr().out
    ecs = client("ecs")
    sizes = [ecs.describe_task_definition(taskDefinition=f"yunpipe-demo-{step}-task")["taskDefinition"]
             .get("ephemeralStorage") for step in ("first", "second")]
    assert sizes == [{"sizeInGiB": 50}, {"sizeInGiB": 200}]


@pytest.mark.parametrize("where, size", [("workflow", 20), ("workflow", 201), ("step", 10)])
def test_ephemeral_storage_outside_21_to_200_gib_is_bad_input(change123, write_workflow, capsys, where, size):
    document = single_run()
    field = "ephemeral_storage_gib"
    if where == "workflow":
        document[field] = size
    else:
        document["process"]["algorithms"][0][field] = size
    assert cli.setup_pipe_main(["-f", write_workflow(document), "--dry-run"]) == 2
    assert field in capsys.readouterr().err


def reserved(function: str):
    return client("lambda").get_function(FunctionName=function).get("Concurrency", {}).get(
        "ReservedConcurrentExecutions")


def test_reservations_stop_where_aws_would_leave_fewer_than_100_unreserved(aws_env, write_workflow, monkeypatch,
                                                                            capsys):
    """With 102 executions, two launchers can reserve one each; the third runs unreserved
    (the old engine planned all three and failed on the third)."""
    strict = StrictAws(clock=Clock(manual=True), lambda_concurrency_limit=102)
    monkeypatch.setattr(executor, "backoff_sleep", strict.clock.sleep)
    with mock_aws(), strict.active():
        for name in ("a", "b", "c"):
            record_algorithm(name, f"user/{name}:1")
        assert cli.setup_pipe_main(["-f", write_workflow(sequence("demo", ["a", "b", "c"]))]) == 0
        assert [reserved(f"yunpipe-demo-{s}-launcher") for s in "abc"] == [1, 1, None]
        assert "has 100 unreserved Lambda executions left, too few" in capsys.readouterr().out
        with watch_calls() as calls:
            assert cli.setup_pipe_main(["-f", write_workflow(sequence("demo", ["a", "b", "c"]))]) == 0
        assert [c for c in calls if is_mutating(c[1])] == []


def test_a_new_account_without_spare_executions_gets_a_working_pipeline(aws_env, change123, write_workflow,
                                                                        monkeypatch, capsys):
    """10 executions in all (a new account): no reservation, so two uploads may launch at the
    same moment. Both files are queued once, and the step's cap of one task still holds."""
    strict = StrictAws(clock=Clock(manual=True), lambda_concurrency_limit=10)
    monkeypatch.setattr(executor, "backoff_sleep", strict.clock.sleep)
    with mock_aws(), strict.active():
        document = single_run()
        document["process"]["algorithms"][0]["concurrency"] = 1
        assert cli.setup_pipe_main(["-f", write_workflow(document)]) == 0
        assert "too few to reserve" in capsys.readouterr().out
        assert reserved(LAUNCHER) is None
        environment = client("lambda").get_function_configuration(FunctionName=LAUNCHER)["Environment"]["Variables"]
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        clients_for.cache_clear()
        # Both launches have counted no running task before either starts one: the race that
        # reserved concurrency 1 would have prevented.
        both_counted = threading.Barrier(2, timeout=30)

        def after_both_counted(**_):
            both_counted.wait()  # returns nothing: a value here would replace RunTask's parameters

        clients_from_env().ecs.meta.events.register("provide-client-params.ecs.RunTask", after_both_counted)
        events = [{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": REGION,
                                "s3": {"bucket": {"name": "demo-in-bucket"},
                                       "object": {"key": key, "eTag": key, "size": 1}}}]} for key in ("a", "b")]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            summaries = list(pool.map(lambda event: launcher.handler(event, None), events))
        clients_for.cache_clear()
        ecs, sqs = client("ecs"), client("sqs")
        running = ecs.list_tasks(cluster="yunpipe-demo", startedBy=environment["YUNPIPE_STARTED_BY"],
                                 desiredStatus="RUNNING")["taskArns"]
        stopped = ecs.list_tasks(cluster="yunpipe-demo", startedBy=environment["YUNPIPE_STARTED_BY"],
                                 desiredStatus="STOPPED")["taskArns"]
        waiting = sqs.get_queue_attributes(QueueUrl=environment["YUNPIPE_QUEUE_URL"],
                                           AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert [s["enqueued"] for s in summaries] == [1, 1]
    assert [s["failures"] for s in summaries] == [[], []]
    # Each launch started one task; the one that looked last stopped its own.
    assert (len(running), len(stopped)) == (1, 1)
    assert sum(s["started"] for s in summaries) == 1
    assert waiting["ApproximateNumberOfMessages"] == "2"


def spot_run() -> dict:
    document = single_run()
    document["process"]["algorithms"][0]["capacity"] = "FARGATE_SPOT"
    return document


def service_linked_roles() -> list[str]:
    return sorted(r["Path"] for r in client("iam").list_roles(PathPrefix="/aws-service-role/")["Roles"])


def test_a_spot_step_in_a_fresh_account_gets_ecs_its_service_linked_role_and_waits_until_it_is_assumable(
        moto, change123, write_workflow):
    path = write_workflow(spot_run())
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    created = [operation for _, operation in calls if is_mutating(operation)]
    assert created[0] == "CreateServiceLinkedRole"  # first of all, before anything ECS needs it for
    # The cluster first, then FARGATE_SPOT attached to it: refused until the new role settled, then retried.
    assert "ecs-service-linked-role-not-assumable-yet" in moto.rules_fired()
    assert created.count("CreateCluster") == 1 and created.count("PutClusterCapacityProviders") > 1
    assert created.index("CreateCluster") < created.index("PutClusterCapacityProviders")
    [cluster] = client("ecs").describe_clusters(clusters=["yunpipe-demo"])["clusters"]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert service_linked_roles() == ["/aws-service-role/ecs.amazonaws.com/"]

    # The role is the account's: clean-up keeps it, and the next setup does not create it again.
    assert cli.clean_up_main(["demo", "--purge"]) == 0
    assert service_linked_roles() == ["/aws-service-role/ecs.amazonaws.com/"]
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    assert ("iam", "CreateServiceLinkedRole") not in calls
    assert "iam-service-linked-role-taken" not in moto.rules_fired()


def test_a_service_linked_role_another_deploy_created_meanwhile_counts_as_created(moto, change123, write_workflow):
    """Planned while missing, created by someone else before the call: IAM's "has been taken" is done."""
    def another_deploy_first(service, operation):
        if operation == "CreateServiceLinkedRole" and not service_linked_roles():
            client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")

    with watch_calls(another_deploy_first):
        assert cli.setup_pipe_main(["-f", write_workflow(spot_run())]) == 0
    assert "iam-service-linked-role-taken" in moto.rules_fired()
    assert service_linked_roles() == ["/aws-service-role/ecs.amazonaws.com/"]


def test_a_fargate_only_pipeline_needs_no_service_linked_role(moto, change123, write_workflow):
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    assert ("iam", "CreateServiceLinkedRole") not in calls and service_linked_roles() == []


def test_setup_waits_until_s3_sees_the_launchers_new_permission(moto, change123, write_workflow):
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    # S3 refused the notification while the permission was moments old; the engine retried.
    assert "s3-permission-not-visible-yet" in moto.rules_fired()
    assert "s3-unvalidated-destination" not in moto.rules_fired()
    assert [op for _, op in calls].count("PutBucketNotificationConfiguration") > 1
    [entry] = client("s3").get_bucket_notification_configuration(Bucket="demo-in-bucket")["LambdaFunctionConfigurations"]
    assert entry["Id"] == "yunpipe:demo:change123-s3"


SCHEDULED_EVENT = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
                   "region": REGION, "resources": [], "detail": {}}


def test_an_upload_throttled_past_its_maximum_age_is_queued_by_the_next_scheduled_run(
        moto, change123, write_workflow, monkeypatch):
    """The launcher as Lambda runs it, on the deployed environment: the upload's event never
    reaches it, but its record waits in the failed-events queue and the schedule queues the file."""
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    environment = client("lambda").get_function_configuration(FunctionName=LAUNCHER)["Environment"]["Variables"]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    clients_for.cache_clear()
    moto.throttle(LAUNCHER)

    client("s3").put_object(Bucket="demo-in-bucket", Key="burst/late file.txt", Body=b"123")

    [refusal] = moto.refusals[-1:]
    assert refusal.rule == "lambda-throttled-event-to-destination" and "burst/late file.txt" in refusal.detail
    sqs = client("sqs")
    assert "Messages" not in sqs.receive_message(QueueUrl=environment["YUNPIPE_QUEUE_URL"], VisibilityTimeout=0)
    summary = launcher.handler(SCHEDULED_EVENT, None)
    clients_for.cache_clear()

    assert (summary["recovered"], summary["enqueued"], summary["started"]) == (1, 1, 1)
    [message] = sqs.receive_message(QueueUrl=environment["YUNPIPE_QUEUE_URL"])["Messages"]
    assert {k: v for k, v in json.loads(message["Body"]).items() if k in ("bucket", "key", "step")} == {
        "bucket": "demo-in-bucket", "key": "burst/late file.txt", "step": "change123-s3"}
    failed = sqs.get_queue_attributes(QueueUrl=environment["YUNPIPE_FAILED_EVENTS_URL"], AttributeNames=["All"])
    assert failed["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert failed["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
