"""The model: deterministic names, Fargate sizes, the launcher zip and the compiled resources
(no AWS involved)."""
import io
import json
import zipfile

import pytest
from helpers import record_algorithm, single_run

from yunpipe.engine import compiler, sizing
from yunpipe.engine import model as m
from yunpipe.engine.target import Target
from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.runtime import contract
from yunpipe.runtime.launcher_package import launcher_zip
from yunpipe.specs.workflow import parse_workflow

TARGET = Target("123456789012", "us-east-1", ("subnet-1", "subnet-2"), ("sg-1",))


def compile_model(document, target=TARGET, use_user_credential=False):
    workflow = resolve_workflow(parse_workflow(document, "workflow.json"), AlgorithmRegistry())
    return compiler.build_model(workflow, target, use_user_credential)


def test_names_fit_aws_limits_deterministically():
    step = "a-very-long-algorithm-name-that-goes-on-and-on-and-on-and-on-x"
    name = m.resource_name("function", "pipeline-with-24-chars-x", step, "launcher")
    assert len(name) <= 64 and name == m.resource_name("function", "pipeline-with-24-chars-x", step, "launcher")
    assert name != m.resource_name("function", "pipeline-with-24-chars-x", step + "y", "launcher")
    assert m.resource_name("queue", "demo", "step", "queue") == "yunpipe-demo-step-queue"
    assert m.resource_name("bucket", "demo", "My_Step.v2", "out") == "yunpipe-demo-my-step-v2-out"
    assert len(m.resource_name("started_by", "demo", step)) <= 36


@pytest.mark.parametrize("vcpu, memory, expected", [
    (1, 128, (1024, 2048)), (0.25, 512, (256, 512)), (0.25, 4096, (512, 4096)),
    (2, 5000, (2048, 5120)), (8, 20000, (8192, 20480)), (17, 1024, None), (16, 200000, None)])
def test_fargate_sizes(vcpu, memory, expected):
    assert sizing.fargate_size(vcpu, memory) == expected


@pytest.mark.parametrize(("overrides", "parallelism"), [
    # change123 asks 1 vCPU and 128 MiB: its task has 2048 MiB, room for 4 jobs (the most by memory).
    ({}, 4), ({"memory": 1024}, 2), ({"memory": 2048}, 1), ({"cpu": 0.25}, 4), ({"cpu": 0.25, "memory": 512}, 1),
    # One job per vCPU when memory holds fewer (2.5 vCPU are rounded up to a 4 vCPU task).
    ({"cpu": 2.5, "memory": 4096}, 4), ({"cpu": 8, "memory": 128}, 8),
    ({"cpu": 1, "parallelism": 6}, 6), ({"parallelism": 1}, 1)])
def test_a_worker_runs_a_job_per_vcpu_or_as_many_as_the_task_memory_holds_unless_the_step_says(
        change123, overrides, parallelism):
    document = single_run()
    document["process"]["algorithms"][0].update(overrides)
    container = compile_model(document).steps[0].task_definition.registration["containerDefinitions"][0]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment["YUNPIPE_PARALLELISM"] == str(parallelism)
    assert contract.WorkerConfig.from_env({**environment, "YUNPIPE_QUEUE_URL": "url"}).parallelism == parallelism


@pytest.mark.parametrize("parallelism", [0, 65])
def test_a_step_s_parallelism_is_1_to_64_jobs(change123, parallelism):
    document = single_run()
    document["process"]["algorithms"][0]["parallelism"] = parallelism
    with pytest.raises(InputError, match="parallelism"):
        compile_model(document)


def test_launcher_zip_is_deterministic():
    first, second = launcher_zip(), launcher_zip()
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        names = archive.namelist()
        # What the launcher imports, at its package path, under empty stand-ins for the parents.
        assert names[:3] == ["yunpipe/__init__.py", "yunpipe/runtime/__init__.py", "yunpipe/runtime/contract.py"]
        assert {"yunpipe/runtime/launcher/handler.py", "yunpipe/runtime/launcher/scaling.py"} <= set(names[3:])
        # The launcher's modules, then accounting's with its price table (its schedule settles runs).
        assert all(name.startswith(("yunpipe/runtime/launcher/", "yunpipe/runtime/accounting/")) for name in names[3:])
        assert {"yunpipe/runtime/accounting/settle.py", "yunpipe/runtime/accounting/prices.json"} <= set(names[3:])
        assert archive.read("yunpipe/__init__.py") == archive.read("yunpipe/runtime/__init__.py") == b""
        assert b"def handler(" in archive.read("yunpipe/runtime/launcher/handler.py")
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_single_run_model(change123):
    model = compile_model(single_run(log_retention_days=7, filter={"suffix": ".txt"}))
    step = model.steps[0]
    assert [b.name for b in model.buckets] == ["demo-in-bucket", "demo-out-bucket", "yunpipe-demo-reports-123456789012"]
    assert json.loads(step.queue.attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:yunpipe-demo-change123-s3-dlq", "maxReceiveCount": 3}
    assert step.queue.attributes["SqsManagedSseEnabled"] == "true"
    registration = step.task_definition.registration
    assert registration["requiresCompatibilities"] == ["FARGATE"] and registration["networkMode"] == "awsvpc"
    assert (registration["cpu"], registration["memory"]) == ("1024", "2048")
    container = registration["containerDefinitions"][0]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment["TEST_ENV"] == "blah blah blah"
    assert environment["YUNPIPE_QUEUE_URL"] == m.QueueUrl("yunpipe-demo-change123-s3-queue")
    assert environment["YUNPIPE_REPORT_BUCKET"] == "yunpipe-demo-reports-123456789012"
    assert not any(name.startswith("AWS_ACCESS") or name.startswith("AWS_SECRET") for name in environment)
    assert "secrets" not in container
    assert container["logConfiguration"]["options"] == {
        "awslogs-group": "/yunpipe/demo", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "change123-s3"}
    assert model.log_group.retention_days == 7
    assert step.notifications[0].entry()["Filter"] == {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".txt"}]}}
    assert step.function.environment["YUNPIPE_SUBNETS"] == "subnet-1,subnet-2"
    assert step.function.environment["YUNPIPE_STARTED_BY"] == step.started_by
    # The step's own resources also carry the step's name (cost allocation by step).
    stepped = {id(r) for r in (step.queue, step.dead_letter_queue, step.failed_events, step.launcher_role, step.task_role,
                                step.execution_role, step.task_definition, step.function, step.rule, step.function_log_group,
                                *(r for g in step.grow for r in (g.queue, g.task_definition)))}
    assert all(r.tags == ({m.TAG_KEY: "demo", m.STEP_TAG_KEY: "change123-s3"} if id(r) in stepped else {m.TAG_KEY: "demo"})
               for r in model.resources() if hasattr(r, "tags"))


def test_resources_come_kind_by_kind_in_creation_order(aws_env):
    """The sweeper deletes in the reverse of CREATION_ORDER, so resources() must follow it."""
    for name in ("step-a", "step-b"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    document = {"name": "seq", "input_s3_name": "seq-in-bucket", "output_s3_name": "seq-out-bucket",
                # A fan-out (bucket events, rules), a step after one step (a notification), on EC2
                # instances (their role, profile, template, group, provider): every kind.
                "process": {"type": "graph", "steps": [{"name": "step-a"}, {"name": "step-b"},
                                                       {"id": "c", "name": "step-a", "after": ["step-a"],
                                                        "instance_type": "m5.large"}]},
                # Notified: the topic and its subscriptions.
                "notify": ["someone@example.org", "https://hooks.example.org/x"]}
    target = Target("123456789012", "us-east-1", credentials={"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
                                                                 "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    kinds = [r.kind for r in compile_model(document, target, use_user_credential=True).resources()]
    assert list(dict.fromkeys(kinds)) == list(m.CREATION_ORDER)  # every kind, first seen in this order
    assert kinds == sorted(kinds, key=m.CREATION_ORDER.index)  # and each kind's resources together


def test_policies_name_exact_arns(change123):
    step = compile_model(single_run()).steps[0]
    launcher = {s["Sid"]: s for s in step.launcher_role.policy["Statement"]}
    assert launcher["QueueObjects"]["Resource"] == "arn:aws:sqs:us-east-1:123456789012:yunpipe-demo-change123-s3-queue"
    # Its own tasks and those of its larger sizes (2048 MiB grows to 4096 and 8192 for jobs out of memory).
    assert launcher["StartTasks"]["Resource"] == [
        f"arn:aws:ecs:us-east-1:123456789012:task-definition/yunpipe-demo-change123-s3-task{size}:*"
        for size in ("", "-grow4096", "-grow8192")]
    assert launcher["SeeGrowQueues"] == {
        "Sid": "SeeGrowQueues", "Effect": "Allow", "Action": "sqs:GetQueueAttributes",
        "Resource": [f"arn:aws:sqs:us-east-1:123456789012:yunpipe-demo-change123-s3-grow{size}" for size in (4096, 8192)]}
    assert launcher["PassTaskRoles"]["Resource"] == [step.task_role.arn, step.execution_role.arn]
    task = {s["Sid"]: s for s in step.task_role.policy["Statement"]}
    assert task["ReadInputs"]["Resource"] == "arn:aws:s3:::demo-in-bucket/*"
    reports = "arn:aws:s3:::yunpipe-demo-reports-123456789012"
    assert task["WriteResultsAndReports"]["Resource"] == ["arn:aws:s3:::demo-out-bucket/*", f"{reports}/failures/*"]
    # Its pipeline's run records (job records, drop-run state, summaries) and its own step's task records.
    assert task["KeepRunRecords"]["Resource"] == [f"{reports}/runs/demo/*", f"{reports}/tasks/demo/change123-s3/*"]
    assert task["CloseRuns"]["Resource"] == f"{reports}/runs/demo/open/*"
    execution = {s["Sid"]: s for s in step.execution_role.policy["Statement"]}
    assert execution["WriteLogs"]["Resource"] == "arn:aws:logs:us-east-1:123456789012:log-group:/yunpipe/demo:*"
    assert "ReadUserCredentials" not in execution
    assert step.launcher_role.trust_policy["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert step.task_role.trust_policy["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}


def test_ecr_image_scopes_the_pull_permission(aws_env):
    record_algorithm("change123-s3", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/change123:1")
    execution = compile_model(single_run()).steps[0].execution_role.policy
    pull = next(s for s in execution["Statement"] if s["Sid"] == "PullImage")
    assert pull["Resource"] == "arn:aws:ecr:us-east-1:123456789012:repository/team/change123"


def test_sequence_chains_through_intermediate_buckets(aws_env):
    for name in ("step-a", "step-b", "step-c"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    document = {"name": "seq", "input_s3_name": "seq-in-bucket", "output_s3_name": "seq-out-bucket",
                "process": {"type": "sequence_run", "algorithms": [{"name": n} for n in ("step-a", "step-b", "step-c")]}}
    model = compile_model(document)
    pairs = [(s.input_bucket, s.output_bucket) for s in model.steps]
    assert pairs == [("seq-in-bucket", "yunpipe-seq-step-a-out-123456789012"),
                     ("yunpipe-seq-step-a-out-123456789012", "yunpipe-seq-step-b-out-123456789012"),
                     ("yunpipe-seq-step-b-out-123456789012", "seq-out-bucket")]
    assert [b.purpose for b in model.buckets] == ["input", "intermediate", "intermediate", "output", "reports"]


def test_user_credentials_are_secrets_never_values(change123):
    target = Target("123456789012", "us-east-1", credentials={"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
                                                                 "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    model = compile_model(single_run(), target, use_user_credential=True)
    registration = model.steps[0].task_definition.registration
    text = json.dumps(registration, default=repr)
    assert "AKIAEXAMPLE" not in text and "s3cr3t" not in text
    assert registration["containerDefinitions"][0]["secrets"] == [
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/yunpipe/demo/aws-access-key-id"},
        {"name": "AWS_SECRET_ACCESS_KEY",
         "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/yunpipe/demo/aws-secret-access-key"}]
    execution = {s["Sid"]: s for s in model.steps[0].execution_role.policy["Statement"]}
    assert execution["ReadUserCredentials"]["Resource"] == [p.arn for p in model.parameters]
    assert "s3cr3t" not in repr(model.parameters)


def test_variable_change_changes_only_the_task_definition_hash(change123):
    before, after = compile_model(single_run()), compile_model(
        {**single_run(), "process": {"type": "single_run", "algorithms": [
            {"name": "change123-s3", "variables": {"TEST_ENV": "other"}}]}})
    assert before.steps[0].task_definition.spec_hash != after.steps[0].task_definition.spec_hash
    assert before.steps[0].queue == after.steps[0].queue and before.steps[0].function == after.steps[0].function


def test_visibility_timeout_reaches_the_queue_and_the_worker(change123):
    """How soon a crashed worker's file is retried: the queue hides a received message for the
    workflow's visibility timeout, and the worker extends it by the same amount while it runs."""
    step = compile_model(single_run(visibility_timeout_seconds=15)).steps[0]
    assert step.queue.attributes["VisibilityTimeout"] == "15"
    container = step.task_definition.registration["containerDefinitions"][0]
    assert {e["name"]: e["value"] for e in container["environment"]}["YUNPIPE_VISIBILITY_SECONDS"] == "15"
    default = compile_model(single_run()).steps[0]
    assert default.queue.attributes["VisibilityTimeout"] == "300"


def test_the_model_s_environments_reach_the_worker_and_the_launcher_whole(change123):
    """The environment contract, end to end: what the model writes, each side reads back as
    the settings the workflow asked for, and nothing is left at a default by omission."""
    from yunpipe.runtime import contract


    document = single_run(idle_seconds=45, visibility_timeout_seconds=90)
    document["process"]["algorithms"][0].update(concurrency=4, max_receive_count=5, files_per_task=7, parallelism=3)
    model = compile_model({**document, "launch_type": "EC2"})
    step = model.steps[0]
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/yunpipe-demo-change123-s3-queue"

    def resolved(environment):
        return {k: "https://sqs.us-east-1.amazonaws.com/123456789012/" + v.queue if isinstance(v, m.QueueUrl) else v
                for k, v in environment.items()}

    container = step.task_definition.registration["containerDefinitions"][0]
    task_environment = resolved({e["name"]: e["value"] for e in container["environment"]})
    worker = contract.WorkerConfig.from_env(task_environment)
    assert worker == contract.WorkerConfig(
        queue_url=queue_url, output_bucket="demo-out-bucket", output_prefix="",
        report_bucket="yunpipe-demo-reports-123456789012", pipeline="demo", step="change123-s3",
        max_receive_count=5, idle_seconds=45, wait_seconds=contract.DEFAULT_WAIT_SECONDS, visibility_seconds=90,
        parallelism=3, algorithm_path=contract.DEFAULT_ALGORITHM_PATH, algorithm_ref="change123-s3@1", image=change123.image_uri,
        task_cpu=int(step.task_definition.registration["cpu"]), task_memory=int(step.task_definition.registration["memory"]),
        capacity="EC2", accounting=True, quiet_seconds=contract.DEFAULT_QUIET_SECONDS,
        grow_queue_url=queue_url.replace("-queue", "-grow4096"), grow_memory=4096, launcher=step.function.name,
        dead_letter_url=queue_url.replace("-queue", "-dlq"))
    assert set(worker.to_env()) <= set(task_environment)
    assert task_environment["TEST_ENV"] == "blah blah blah" and task_environment["AWS_REGION"] == "us-east-1"

    launch = contract.LauncherConfig.from_env(resolved(step.function.environment))
    assert launch == contract.LauncherConfig(
        pipeline="demo", step="change123-s3", queue_url=queue_url, cluster="yunpipe-demo",
        task_definition="yunpipe-demo-change123-s3-task", started_by=step.started_by, concurrency=4,
        files_per_task=7, launch_type="EC2", subnets=("subnet-1", "subnet-2"), security_groups=("sg-1",), assign_public_ip="ENABLED",
        failed_events_url=queue_url.replace("-queue", "-launcher-failed"),
        report_bucket="yunpipe-demo-reports-123456789012", accounting=True,
        grow=tuple(contract.GrowPath(level.memory, f"yunpipe-demo-change123-s3-task-grow{level.memory}",
                                     level.started_by, queue_url.replace("-queue", f"-grow{level.memory}"))
                   for level in step.grow))
    assert [level.memory for level in step.grow] == [4096, 8192]
    assert set(launch.to_env()) == set(step.function.environment)


def test_accounting_settings_reach_the_worker_and_the_launcher(change123):
    """The task's size and capacity (what it is billed as), the switch and the quiet period."""
    record_algorithm("other", "user/other:1", variables=[])
    document = {"name": "acct", "input_s3_name": "acct-in-bucket", "output_s3_name": "acct-out-bucket",
                "accounting": False, "run_quiet_seconds": 600,
                "process": {"type": "graph", "steps": [
                    {"name": "change123-s3", "variables": {"TEST_ENV": "x"}, "cpu": 0.25, "memory": 512},
                    {"name": "other", "capacity": "FARGATE_SPOT", "cpu": 2, "memory": 5000},
                    {"id": "gpu", "name": "other", "after": ["other"], "instance_type": "g5.xlarge"}]}}
    seen = {}
    for step in compile_model(document).steps:
        container = step.task_definition.registration["containerDefinitions"][0]
        worker = contract.WorkerConfig.from_env({e["name"]: str(e["value"]) for e in container["environment"]},
                                                strict=False)
        launch = step.function.environment
        assert (worker.accounting, worker.quiet_seconds) == (False, 600)
        assert (launch["YUNPIPE_ACCOUNTING"], launch["YUNPIPE_REPORT_BUCKET"]) == ("0", worker.report_bucket)
        seen[step.name] = (worker.task_cpu, worker.task_memory, worker.capacity)
    assert seen["change123-s3"] == (256, 512, "FARGATE")
    # Fargate's sizes: 2 vCPU and 5000 MiB are billed as 2048 units and 5120 MiB.
    assert seen["other"] == (2048, 5120, "FARGATE_SPOT")
    assert seen["gpu"][2] == compiler.capacity_provider_name("acct", "g5.xlarge")


ACCOUNTING_GRANTS = {"task": {"KeepRunRecords", "SettleRuns", "CloseRuns", "ListRunRecords", "SeeEntryQueues"},
                     "launcher": {"SettleRuns", "WriteSummaries", "CloseRuns", "ListRunRecords", "SeeEntryQueues"}}


@pytest.mark.parametrize("accounting", [True, False])
def test_the_roles_reach_the_run_records_only_with_accounting_on(change123, accounting):
    """Without accounting nothing records or settles runs: neither role may read or write them."""
    document = {**single_run(), "accounting": accounting}
    step = compile_model(document).steps[0]
    for kind, role in (("task", step.task_role), ("launcher", step.launcher_role)):
        sids = {s["Sid"] for s in role.policy["Statement"]}
        assert ACCOUNTING_GRANTS[kind] & sids == (ACCOUNTING_GRANTS[kind] if accounting else set()), (kind, sorted(sids))


def test_accounting_is_on_by_default_with_the_contract_s_quiet_period(change123):
    step = compile_model(single_run()).steps[0]
    container = step.task_definition.registration["containerDefinitions"][0]
    environment = {e["name"]: str(e["value"]) for e in container["environment"]}
    assert environment["YUNPIPE_ACCOUNTING"] == step.function.environment["YUNPIPE_ACCOUNTING"] == "1"
    assert environment["YUNPIPE_QUIET_SECONDS"] == str(contract.DEFAULT_QUIET_SECONDS)


def test_the_contract_s_defaults_are_the_specs_defaults(change123):
    from yunpipe.runtime import contract


    step = compile_model(single_run()).steps[0]
    container = step.task_definition.registration["containerDefinitions"][0]
    worker = contract.WorkerConfig.from_env({e["name"]: str(e["value"]) for e in container["environment"]})
    defaults = contract.WorkerConfig(queue_url="", output_bucket="")
    assert (worker.max_receive_count, worker.idle_seconds, worker.visibility_seconds) == (
        defaults.max_receive_count, defaults.idle_seconds, defaults.visibility_seconds)
    launch_defaults = contract.LauncherConfig("", "", "", "", "", "")
    assert step.function.environment["YUNPIPE_CONCURRENCY"] == str(launch_defaults.concurrency)
    assert step.function.environment["YUNPIPE_FILES_PER_TASK"] == str(launch_defaults.files_per_task)
    assert step.function.environment["YUNPIPE_CAPACITY_PROVIDER"] == launch_defaults.capacity_provider == ""


def grow_model(workflow_fields=None, **step_fields):
    document = single_run(**(workflow_fields or {}))
    document["process"]["algorithms"][0].update(step_fields)
    return compile_model(document).steps[0]


def environment_of(task_definition):
    return {e["name"]: e["value"] for e in task_definition.registration["containerDefinitions"][0]["environment"]}


@pytest.mark.parametrize(("workflow_fields", "step_fields", "sizes"), [
    # By default four times the step's memory, within Fargate's sizes for its CPU.
    ({}, {"cpu": 0.25, "memory": 512}, [1024, 2048]),
    ({}, {"cpu": 0.25, "memory": 1024}, [2048]),
    ({}, {"cpu": 0.5, "memory": 3072}, [4096]),
    ({}, {"cpu": 8, "memory": 16384}, [32768, 61440]),
    # Doubling up to max_memory; the last size is max_memory itself.
    ({}, {"cpu": 4, "memory": 8192, "max_memory": 30720}, [16384, 30720]),
    ({"max_memory": 1024}, {"cpu": 0.25, "memory": 512}, [1024]),
    ({"max_memory": 1024}, {"cpu": 0.25, "memory": 512, "max_memory": 2048}, [1024, 2048]),
    # The step's own memory turns growing off.
    ({}, {"cpu": 0.25, "memory": 512, "max_memory": 512}, []),
    ({"max_memory": 2048}, {"cpu": 0.25, "memory": 2048}, []),
])
def test_a_step_grows_by_doubling_up_to_its_max_memory(change123, workflow_fields, step_fields, sizes):
    assert [level.memory for level in grow_model(workflow_fields, **step_fields).grow] == sizes


def test_each_larger_size_is_a_queue_and_a_task_definition_of_its_own_chained_to_the_next(change123):
    step = grow_model(cpu=0.25, memory=512, max_receive_count=5)
    small, large = step.grow
    assert (small.queue.name, large.queue.name) == ("yunpipe-demo-change123-s3-grow1024", "yunpipe-demo-change123-s3-grow2048")
    dlq = step.dead_letter_queue.arn
    # A try at the largest size is the last: out of memory there, the file is dead-lettered.
    assert [json.loads(level.queue.attributes["RedrivePolicy"]) for level in step.grow] == [
        {"deadLetterTargetArn": dlq, "maxReceiveCount": 5}, {"deadLetterTargetArn": dlq, "maxReceiveCount": 1}]
    chain = [environment_of(t) for t in (step.task_definition, small.task_definition, large.task_definition)]
    assert [e["YUNPIPE_QUEUE_URL"] for e in chain] == [m.QueueUrl(q.name) for q in (step.queue, small.queue, large.queue)]
    assert [e["YUNPIPE_GROW_QUEUE_URL"] for e in chain] == [m.QueueUrl(small.queue.name), m.QueueUrl(large.queue.name), ""]
    assert [e["YUNPIPE_GROW_MEMORY"] for e in chain] == ["1024", "2048", "0"]
    # A worker that sends a job on wakes its launcher, which starts the larger task at once.
    assert [e["YUNPIPE_LAUNCHER"] for e in chain] == [step.function.name, step.function.name, ""]
    assert [e["YUNPIPE_TASK_MEMORY"] for e in chain] == ["512", "1024", "2048"]
    assert [e["YUNPIPE_MAX_RECEIVE_COUNT"] for e in chain] == ["5", "5", "1"]
    # The job that ran out of memory gets the whole larger task.
    assert [e["YUNPIPE_PARALLELISM"] for e in chain][1:] == ["1", "1"]
    for level in step.grow:
        registration = level.task_definition.registration
        assert registration["memory"] == str(level.memory) and registration["cpu"] == "256"
        assert registration["containerDefinitions"][0]["memory"] == level.memory
        assert registration["family"] == f"yunpipe-demo-change123-s3-task-grow{level.memory}"
    assert len({step.started_by, small.started_by, large.started_by}) == 3
    # The task role drains every size's queue, hands files back to it and sends them on to the next.
    task = {s["Sid"]: s for s in step.task_role.policy["Statement"]}
    assert task["DrainQueue"]["Resource"] == [step.queue.arn, small.queue.arn, large.queue.arn]
    assert "sqs:SendMessage" in task["DrainQueue"]["Action"]
    assert (task["WakeLauncher"]["Action"], task["WakeLauncher"]["Resource"]) == ("lambda:InvokeFunction",
                                                                                 step.function.arn)


def test_a_step_that_does_not_grow_has_no_larger_size_nor_its_grants(change123):
    step = grow_model(cpu=0.25, memory=512, max_memory=512)
    assert step.grow == ()
    assert environment_of(step.task_definition)["YUNPIPE_GROW_QUEUE_URL"] == ""
    task = {s["Sid"]: s for s in step.task_role.policy["Statement"]}
    assert "WakeLauncher" not in task and task["DrainQueue"]["Resource"] == step.queue.arn
    assert "SeeGrowQueues" not in {s["Sid"] for s in step.launcher_role.policy["Statement"]}
    assert step.function.environment["YUNPIPE_GROW"] == ""


@pytest.mark.parametrize(("workflow_fields", "step_fields", "field", "message"), [
    ({}, {"cpu": 0.25, "memory": 1024, "max_memory": 512}, "process.algorithms[0].max_memory",
     "expected at least the step's memory, 1024 MiB (equal turns growing off), got 512"),
    ({}, {"cpu": 0.25, "memory": 512, "max_memory": 4096}, "process.algorithms[0].max_memory",
     "expected one of Fargate's memories for 256 CPU units (the step's task): 512, 1024, 2048 MiB, got 4096"),
    ({}, {"cpu": 1, "memory": 2048, "max_memory": 5000}, "process.algorithms[0].max_memory",
     "expected one of Fargate's memories for 1024 CPU units (the step's task): 2048, 3072, 4096, 5120"),
    ({"max_memory": 256}, {"cpu": 0.25, "memory": 512}, "max_memory", "expected at least the step's memory, 512 MiB"),
    ({}, {"memory": 1024, "instance_type": "m5.large", "max_memory": 2048}, "process.algorithms[0].max_memory",
     "expected at most the step's 1024 MiB on m5.large instances: larger sizes for jobs out of memory are Fargate's only"),
])
def test_a_max_memory_the_step_s_compute_cannot_give_is_refused_naming_its_field(
        change123, workflow_fields, step_fields, field, message):
    with pytest.raises(InputError) as error:
        grow_model(workflow_fields, **step_fields)
    assert error.value.field == field and message in str(error.value), str(error.value)


def test_a_step_on_ec2_instances_does_not_grow_by_default(change123):
    assert grow_model(memory=1024, instance_type="m5.large").grow == ()
