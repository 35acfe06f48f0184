"""Runs opened by `yunpipe upload` and `submit` (operations/opening.py), the pipeline descriptor
setup-pipe writes for them (engine/kinds/accounting_descriptor.py), and the drop-run that workers
meeting files at once agree on (runtime/accounting/runs.drop_run), on moto."""
import contextlib
import json
import threading
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from helpers import REGION, record_algorithm, single_run

from yunpipe import cli
from yunpipe.aws.location import AwsOptions
from yunpipe.engine.state import require_summary, state_path
from yunpipe.operations import opening
from yunpipe.operations.reach import reach
from yunpipe.operations.transfer import UploadOptions, upload
from yunpipe.runtime.accounting import records, runs

ACCOUNT = "123456789012"
REPORTS = f"yunpipe-demo-reports-{ACCOUNT}"
STEP = "change123-s3"


def s3():
    return boto3.client("s3", region_name=REGION)


def read_json(bucket, key):
    return json.loads(s3().get_object(Bucket=bucket, Key=key)["Body"].read())


def open_markers(pipeline="demo", bucket=REPORTS):
    listed = s3().list_objects_v2(Bucket=bucket, Prefix=records.open_prefix(pipeline)).get("Contents", [])
    return [o["Key"].rsplit("/", 1)[1] for o in listed]


@pytest.fixture
def deployed(moto, change123, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0


def test_setup_pipe_describes_the_pipeline_for_accounting_and_keeps_it_unchanged(moto, write_workflow, capsys):
    for name in ("upper", "count", "pair"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    document = {"name": "g", "input_s3_name": "g-in-bucket", "output_s3_name": "g-out-bucket",
                "process": {"type": "graph", "steps": [
                    {"id": "upper", "name": "upper"},
                    {"id": "count", "name": "count", "filter": {"suffix": ".txt"}},
                    {"id": "both", "name": "pair", "after": ["upper", "count"]}]}}
    path = write_workflow(document)
    assert cli.setup_pipe_main(["-f", path]) == 0
    described = read_json(f"yunpipe-g-reports-{ACCOUNT}", records.pipeline_key("g"))
    assert (described["pipeline"], described["region"], described["accounting"], described["topic_arn"]) == (
        "g", REGION, True, "")
    assert described["run_quiet_seconds"] == 120
    steps = {s["name"]: s for s in described["steps"]}
    assert [s["name"] for s in described["steps"]] == ["upper", "count", "both"]
    assert (steps["upper"]["entry"], steps["upper"]["downstream"], steps["count"]["suffix"]) == (True, ["both"], ".txt")
    assert steps["both"]["join"] and not steps["both"]["entry"]
    assert [s["step"] for s in steps["both"]["sources"]] == ["upper", "count"]
    assert (steps["both"]["cpu"], steps["both"]["memory_mib"], steps["both"]["max_receive_count"]) == (1024, 2048, 3)
    assert steps["upper"]["queue"] == "yunpipe-g-upper-queue"
    assert steps["upper"]["failed_events_queue"] == "yunpipe-g-upper-launcher-failed"
    # Unchanged: a second setup-pipe plans nothing for it (nor anything else).
    capsys.readouterr()
    assert cli.setup_pipe_main(["-f", path]) == 0
    assert "accounting" not in capsys.readouterr().out
    # Changed: put again.
    document["process"]["steps"][1]["filter"] = {"suffix": ".csv"}
    assert cli.setup_pipe_main(["-f", write_workflow(document)]) == 0
    assert "describe the pipeline for its run accounting" in capsys.readouterr().out
    steps = {s["name"]: s for s in read_json(f"yunpipe-g-reports-{ACCOUNT}", records.pipeline_key("g"))["steps"]}
    assert steps["count"]["suffix"] == ".csv"


def test_clean_up_removes_the_descriptor_even_without_the_state_file(deployed, capsys):
    state_path("demo").unlink()
    assert cli.clean_up_main(["demo"]) == 0
    assert "delete s3://" in capsys.readouterr().out
    assert s3().list_objects_v2(Bucket=REPORTS, Prefix="pipelines/").get("KeyCount") == 0


def test_upload_opens_a_run_named_on_every_file_and_prints_how_to_follow_it(deployed, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / "data" / name).write_text(name)
    capsys.readouterr()
    assert cli.main(["upload", "demo", str(tmp_path / "data"), "--prefix", "in/"]) == 0
    [run] = open_markers()
    assert runs.RUN_NAME.match(run) and run.endswith("-upload")
    manifest = read_json(REPORTS, records.manifest_key("demo", run))
    assert (manifest["kind"], manifest["by"], manifest["closes_after"]) == ("upload", "yunpipe upload", None)
    assert manifest["inputs"] == [{"bucket": "demo-in-bucket", "key": "in/a.txt"},
                                  {"bucket": "demo-in-bucket", "key": "in/b.txt"}]
    assert "steps" not in manifest  # the entry steps' filters decide
    for key in ("in/a.txt", "in/b.txt"):
        assert s3().head_object(Bucket="demo-in-bucket", Key=key)["Metadata"] == {records.RUN_METADATA: run}
    out = capsys.readouterr().out
    assert f"Run {run}: follow it with `yunpipe runs demo`; when it has settled, `yunpipe report demo {run}`" in out


def test_runs_opened_in_the_same_second_take_the_next_serial(deployed):
    summary = require_summary("demo")
    aws = reach(AwsOptions(), "demo", summary)
    at = datetime(2026, 12, 7, 14, 0, 0, tzinfo=timezone.utc)
    inputs = [{"bucket": "demo-in-bucket", "key": "x"}]
    names = [opening.open_run(aws, summary, "upload", inputs, "test", now=at).run for _ in range(3)]
    assert names == ["20261207T140000Z-upload", "20261207T140000Z-upload-2", "20261207T140000Z-upload-3"]
    assert sorted(open_markers()) == sorted(names)


def test_an_upload_that_stops_half_way_leaves_a_run_of_what_arrived(deployed, tmp_path):
    for name in ("1.txt", "2.txt", "3.txt"):
        (tmp_path / name).write_text(name)

    @contextlib.contextmanager
    def progress(total, description):
        # While the first file goes up, the second is deleted: its upload fails as S3 never sees it.
        yield lambda size: (tmp_path / "2.txt").unlink(missing_ok=True)

    paths = tuple(str(tmp_path / name) for name in ("1.txt", "2.txt", "3.txt"))
    with pytest.raises(OSError):
        upload(UploadOptions("demo", paths), progress)
    [run] = open_markers()
    manifest = read_json(REPORTS, records.manifest_key("demo", run))
    assert manifest["inputs"] == [{"bucket": "demo-in-bucket", "key": "1.txt"}]
    assert manifest["stopped"] == "1 of 3 sent"


def test_a_pipeline_that_does_not_account_gets_no_run(deployed, tmp_path, capsys):
    s3().put_object(Bucket=REPORTS, Key=records.pipeline_key("demo"), Body=json.dumps({"accounting": False}).encode())
    (tmp_path / "a.txt").write_text("a")
    capsys.readouterr()
    assert cli.main(["upload", "demo", str(tmp_path / "a.txt")]) == 0
    assert cli.main(["submit", "demo"]) == 0
    assert open_markers() == []
    assert s3().head_object(Bucket="demo-in-bucket", Key="a.txt")["Metadata"] == {}
    assert "Run " not in capsys.readouterr().out
    body = json.loads(boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=boto3.client("sqs", region_name=REGION).get_queue_url(
            QueueName=f"yunpipe-demo-{STEP}-queue")["QueueUrl"])["Messages"][0]["Body"])
    assert "run" not in body


def test_submit_opens_a_run_for_the_step_it_sends_to(deployed, capsys):
    for key in ("p/1.txt", "p/2.txt", "p/"):
        s3().put_object(Bucket="demo-in-bucket", Key=key, Body=b"x")
    capsys.readouterr()
    assert cli.main(["submit", "demo", "--prefix", "p/"]) == 0
    [run] = open_markers()
    manifest = read_json(REPORTS, records.manifest_key("demo", run))
    assert (manifest["kind"], manifest["steps"]) == ("submit", [STEP])
    assert [i["key"] for i in manifest["inputs"]] == ["p/1.txt", "p/2.txt"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.get_queue_url(QueueName=f"yunpipe-demo-{STEP}-queue")["QueueUrl"]
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]]
    assert sorted((b["key"], b["run"]) for b in bodies) == [("p/1.txt", run), ("p/2.txt", run)]
    assert f"Run {run}: follow it" in capsys.readouterr().out


def test_submit_gather_opens_a_run_for_its_one_job(deployed):
    assert cli.main(["submit", "demo", "--gather", "--name", "everything"]) == 0
    [run] = open_markers()
    manifest = read_json(REPORTS, records.manifest_key("demo", run))
    assert (manifest["by"], manifest["steps"], manifest["inputs"]) == (
        "yunpipe submit --gather", [STEP], [{"bucket": "demo-in-bucket", "key": "everything"}])


def test_submit_of_nothing_opens_no_run(deployed):
    assert cli.main(["submit", "demo", "--prefix", "none/"]) == 0
    assert open_markers() == []


def test_workers_meeting_new_files_at_once_agree_on_one_drop_run(moto):
    s3().create_bucket(Bucket="reports")
    start = datetime(2026, 12, 7, 14, 0, 0, tzinfo=timezone.utc)
    barrier, found, errors = threading.Barrier(8), [], []

    def worker(index):
        client = boto3.client("s3", region_name=REGION)
        barrier.wait()
        try:
            # Each worker's own memory would answer at once: every call here must agree through S3.
            with runs._cache_lock:
                runs._cache.clear()
            found.append(runs.drop_run(client, "reports", "p", start + timedelta(seconds=index), 60))
        except runs.RunError as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(found)) == 1 and len(found) == 8
    assert open_markers("p", "reports") == [found[0]]
    manifest = read_json("reports", records.manifest_key("p", found[0]))
    assert (manifest["kind"], manifest["inputs"], manifest["closes_after"]) == ("drop", None, 60)


def test_a_graph_of_many_entry_steps_names_their_queues_by_pattern_within_iam_s_policy_size(aws_env):
    """Each entry queue would add its ARNs to every role; past a few, the pipeline's own pattern."""
    from yunpipe.engine import compiler, limits
    from yunpipe.engine.target import Target
    from yunpipe.registry import AlgorithmRegistry
    from yunpipe.resolve import resolve_workflow
    from yunpipe.specs.workflow import parse_workflow
    record_algorithm("upper", "user/upper:1", variables=[])

    def roles(entries):
        steps = [{"id": f"entry-step-number-{i}", "name": "upper"} for i in range(entries)]
        document = {"name": "wide", "input_s3_name": "wide-in", "output_s3_name": "wide-out",
                    "process": {"type": "graph", "steps": steps}}
        workflow = resolve_workflow(parse_workflow(document, "w.json"), AlgorithmRegistry())
        model = compiler.build_model(workflow, Target(ACCOUNT, REGION, ("subnet-1",), ("sg-1",)))
        return [role.policy for step in model.steps for role in (step.task_role, step.launcher_role)]

    def queues(policy):
        return next(s for s in policy["Statement"] if s["Sid"] == "SeeEntryQueues")["Resource"]

    few, many = roles(2), roles(60)
    assert queues(few[0]) == [f"arn:aws:sqs:{REGION}:{ACCOUNT}:yunpipe-wide-entry-step-number-{i}-{kind}"
                              for i in range(2) for kind in ("queue", "launcher-failed")]
    assert {tuple(queues(p)) for p in many} == {(f"arn:aws:sqs:{REGION}:{ACCOUNT}:yunpipe-wide-*",)}
    assert max(limits.policy_characters(p) for p in many) < limits.ROLE_POLICY_CHARACTERS
