"""clean-up deploys an empty desired state: from the state file, or from tags when it is lost."""
import json

import boto3
import pytest
from helpers import REGION, record_algorithm, single_run
from test_setup_pipe import mutating, tagged_arns

from yunpipe import cli
from yunpipe.aws.facade import watch_calls
from yunpipe.engine.state import state_path


@pytest.fixture
def deployed(moto, change123, write_workflow):
    path = write_workflow(single_run())
    assert cli.setup_pipe_main(["-f", path]) == 0
    return path


def test_purge_leaves_nothing_tagged_and_a_second_run_finds_nothing(deployed, capsys):
    assert cli.clean_up_main(["demo", "--purge"]) == 0
    assert tagged_arns() == []
    assert boto3.client("iam").list_roles(PathPrefix="/yunpipe/")["Roles"] == []
    assert boto3.client("events", region_name=REGION).list_rules()["Rules"] == []
    assert not state_path("demo").exists()
    capsys.readouterr()
    with watch_calls() as calls:
        assert cli.clean_up_main(["demo", "--purge"]) == 2
    assert mutating(calls) == []
    assert capsys.readouterr().err == ("error: no pipeline 'demo' found (no state on this machine, "
                                       "nothing tagged in AWS account 123456789012 region us-east-1)\n")


def test_a_name_found_nowhere_stops_the_clean_up_of_every_name(deployed, capsys):
    with watch_calls() as calls:
        assert cli.clean_up_main(["demo", "nope", "--purge"]) == 2
    assert mutating(calls) == []
    assert "no pipeline 'nope' found" in capsys.readouterr().err
    assert state_path("demo").exists() and tagged_arns() != []


def test_all_with_nothing_to_do_is_a_success(moto, capsys):
    with watch_calls() as calls:
        assert cli.clean_up_main(["--all"]) == 0
    assert mutating(calls) == []
    assert capsys.readouterr() == ("No pipeline to clean up.\n", "")


def test_all_skips_a_pipeline_recorded_where_the_flags_do_not_point(deployed, capsys):
    # The launcher role (IAM is global) makes discovery in eu-west-1 find it too.
    assert cli.clean_up_main(["--all", "--region", "eu-west-1"]) == 0
    assert "Skipped pipeline demo: --region: eu-west-1: contradicts where pipeline 'demo' lives in AWS account " \
           "123456789012 region us-east-1" in capsys.readouterr().out
    assert state_path("demo").exists() and "yunpipe-demo-change123-s3-launcher" in " ".join(tagged_arns())
    assert cli.clean_up_main(["--all", "--purge"]) == 0
    assert tagged_arns() == [] and not state_path("demo").exists()


def test_without_purge_the_buckets_and_their_data_stay(deployed, capsys):
    boto3.client("s3").put_object(Bucket="demo-out-bucket", Key="result.txt", Body=b"1")
    assert cli.clean_up_main(["demo"]) == 0
    assert "clean-up --purge demo" in capsys.readouterr().out
    assert sorted(a.split(":::")[1] for a in tagged_arns()) == [
        "demo-in-bucket", "demo-out-bucket", "yunpipe-demo-reports-123456789012"]
    with watch_calls() as calls:
        assert cli.clean_up_main(["demo"]) == 0
    assert mutating(calls) == []
    # The buckets are still recorded, so a later purge finds them.
    assert cli.clean_up_main(["demo", "--purge"]) == 0
    assert tagged_arns() == []


def test_lost_state_file_cleans_up_from_tags(deployed):
    s3 = boto3.client("s3")
    s3.put_bucket_versioning(Bucket="demo-out-bucket", VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"2"):
        s3.put_object(Bucket="demo-out-bucket", Key="result.txt", Body=body)
    state_path("demo").unlink()
    assert cli.clean_up_main(["demo", "--purge"]) == 0
    assert tagged_arns() == []
    assert s3.list_buckets()["Buckets"] == []


@pytest.mark.parametrize("state_lost", [False, True], ids=["from-state", "from-tags"])
def test_the_launchers_failed_events_destination_and_queue_go_with_it(deployed, state_lost):
    lambda_ = boto3.client("lambda", region_name=REGION)
    function = "yunpipe-demo-change123-s3-launcher"
    assert lambda_.get_function_event_invoke_config(FunctionName=function)["DestinationConfig"]["OnFailure"] == {
        "Destination": "arn:aws:sqs:us-east-1:123456789012:yunpipe-demo-change123-s3-launcher-failed"}
    if state_lost:
        state_path("demo").unlink()
    with watch_calls() as calls:
        assert cli.clean_up_main(["demo", "--purge"]) == 0
    deleted = mutating(calls)
    # Its settings go before the function they belong to.
    assert deleted.index(("lambda", "DeleteFunctionEventInvokeConfig")) < deleted.index(("lambda", "DeleteFunction"))
    assert boto3.client("sqs", region_name=REGION).list_queues().get("QueueUrls", []) == []


def test_lost_state_keeps_a_users_bucket_but_removes_yunpipes_notification(moto, change123, write_workflow):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="demo-in-bucket")
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    state_path("demo").unlink()
    assert cli.clean_up_main(["demo"]) == 0
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket="demo-in-bucket")


def test_all_finds_every_pipeline(moto, change123, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run("one"), "one.json"),
                                write_workflow(single_run("two"), "two.json")]) == 0
    state_path("two").unlink()
    assert cli.clean_up_main(["--all", "--purge"]) == 0
    assert tagged_arns("one") == [] and tagged_arns("two") == []


def test_dry_run_changes_nothing(deployed, capsys):
    with watch_calls() as calls:
        assert cli.clean_up_main(["demo", "--purge", "--dry-run"]) == 0
    assert mutating(calls) == []
    out = capsys.readouterr().out
    assert "delete launcher Lambda yunpipe-demo-change123-s3-launcher" in out and "Dry run" in out
    assert json.loads(state_path("demo").read_text())["resources"]


def test_setup_removes_the_steps_a_workflow_no_longer_has(moto, write_workflow):
    for name in ("step-a", "step-b"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    sequence = {"name": "seq", "input_s3_name": "seq-in-bucket", "output_s3_name": "seq-out-bucket",
                "process": {"type": "sequence_run", "algorithms": [{"name": "step-a"}, {"name": "step-b"}]}}
    assert cli.setup_pipe_main(["-f", write_workflow(sequence)]) == 0
    single = {**sequence, "process": {"type": "single_run", "algorithms": [{"name": "step-a"}]}}
    assert cli.setup_pipe_main(["-f", write_workflow(single, "single.json")]) == 0
    lam = boto3.client("lambda", region_name=REGION)
    assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == ["yunpipe-seq-step-a-launcher"]
    s3 = boto3.client("s3")
    intermediate = "yunpipe-seq-step-a-out-123456789012"
    # The old intermediate bucket keeps its data (only --purge deletes buckets) but no longer triggers anything.
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=intermediate)
    assert cli.clean_up_main(["seq", "--purge"]) == 0
    assert tagged_arns("seq") == []


def test_purge_deletes_what_a_stopping_worker_writes_after_the_plan(deployed, capsys):
    """A worker stopped by clean-up writes its task record on its way out, after the plan listed
    the reports bucket: the purge deletes that too instead of failing on BucketNotEmpty."""
    s3 = boto3.client("s3", region_name=REGION)
    [reports] = [b["Name"] for b in s3.list_buckets()["Buckets"] if "-reports-" in b["Name"]]
    written = []

    def worker_writes_late(service: str, operation: str) -> None:
        if (service, operation) == ("s3", "DeleteObjects") and not written:
            written.append(True)
            s3.put_object(Bucket=reports, Key="tasks/demo/change123-s3/late.json", Body=b"{}")

    s3.put_object(Bucket=reports, Key="runs/demo/early.json", Body=b"{}")
    with watch_calls(worker_writes_late):
        assert cli.clean_up_main(["demo", "--purge"]) == 0
    assert written and reports not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
