"""Workflow graphs: steps by id, fan-out, join, gather, per-step overrides (spec, layout, model;
no AWS involved). The e2e suite runs such a graph on the local cloud."""
import json

import pytest
from helpers import queue_urls_filled, record_algorithm

from yunpipe.engine import compiler, graph
from yunpipe.engine.target import Target
from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.runtime import contract
from yunpipe.specs.workflow import parse_workflow

TARGET = Target("123456789012", "us-east-1", ("subnet-1",), ("sg-1",))
ACCOUNT = TARGET.account_id


@pytest.fixture
def algorithms(aws_env):
    for name in ("upper", "count", "pair", "summary"):
        record_algorithm(name, f"user/{name}:1", variables=[])


def workflow(steps, kind="graph", **extra):
    key = "steps" if kind == "graph" else "algorithms"
    return {"name": "g", "input_s3_name": "g-in-bucket", "output_s3_name": "g-out-bucket",
            "process": {"type": kind, key: steps}, **extra}


def compile_model(document):
    resolved = resolve_workflow(parse_workflow(document, "wf.json"), AlgorithmRegistry())
    return compiler.build_model(resolved, TARGET)


FAN_OUT_JOIN_GATHER = [
    {"id": "upper", "name": "upper"},
    {"id": "count", "name": "count", "filter": {"suffix": ".txt"}},
    {"id": "both", "name": "pair", "after": ["upper", "count"]},
    {"id": "all", "name": "summary", "after": ["both"], "gather": True, "marker": "_DONE"},
]


def error_of(document) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_workflow(document, "wf.json")
    return caught.value


@pytest.mark.parametrize("steps, field, words", [
    ([{"name": "upper", "after": ["nope"]}], "process.steps[0].after[0]", "expected the id of another step"),
    ([{"name": "upper", "after": ["upper"]}], "process.steps[0].after[0]", "not the step itself"),
    ([{"name": "upper"}, {"name": "count", "after": ["upper", "upper"]}], "process.steps[1].after[1]",
     "would feed the step twice with the same keys"),
    ([{"id": "a", "name": "upper", "after": ["b"]}, {"id": "b", "name": "count", "after": ["a"]}],
     "process.steps[0].after", "without a cycle, got a -> b -> a"),
    ([{"name": "upper"}, {"name": "upper"}], "process.steps[1].name", "give the repeated algorithm an \"id\""),
    ([{"id": "x", "name": "upper"}, {"id": "x", "name": "count"}], "process.steps[1].id", "'x' is already"),
    ([{"name": "upper"}, {"name": "count"}, {"name": "summary", "after": ["upper", "count"], "gather": True}],
     "process.steps[2].after", "at most one step before a gather step"),
    ([{"name": "upper", "marker": "_DONE"}], "process.steps[0].marker", "only on a gather step"),
    ([{"id": "Bad_Id", "name": "upper"}], "process.steps[0].id", "lower-case letters"),
])
def test_bad_graphs_name_the_field(steps, field, words):
    error = error_of(workflow(steps))
    assert (error.source, error.field) == ("wf.json", field) and words in str(error), str(error)


def test_chain_and_graph_fields_do_not_mix():
    error = error_of(workflow([{"name": "upper", "after": ["x"]}], kind="sequence_run"))
    assert error.field == "process.algorithms[0].after" and "unknown field" in str(error)
    error = error_of({**workflow([{"name": "upper"}]), "process": {"type": "graph", "algorithms": [{"name": "upper"}]}})
    assert error.field == "process.algorithms" and "expected process.steps" in str(error)
    error = error_of({**workflow([]), "process": {"type": "sequence_run"}})
    assert error.field == "process.algorithms" and "missing required field" in str(error)


def test_same_algorithm_twice_in_a_sequence_by_id(algorithms):
    model = compile_model(workflow([{"name": "upper"}, {"id": "upper-again", "name": "upper"}], kind="sequence_run"))
    first, second = model.steps
    assert (first.name, second.name) == ("upper", "upper-again")
    assert first.output_bucket == second.input_bucket == f"yunpipe-g-upper-out-{ACCOUNT}"
    assert second.output_bucket == "g-out-bucket"
    assert len({s.queue.name for s in model.steps}) == 2 and len({s.function.name for s in model.steps}) == 2


def test_same_algorithm_twice_in_a_sequence_without_ids_as_in_0_0_3(algorithms):
    """Numbered step ids (specs.workflow.number_repeats): a chain of its own resources per repeat."""
    steps = [{"name": "upper", "variables": {}}, {"name": "count"}, {"name": "upper", "cpu": 2}]
    model = compile_model(workflow(steps, kind="sequence_run"))
    first, count, second = model.steps
    assert [s.name for s in model.steps] == ["upper", "count", "upper-2"]
    assert count.input_bucket == first.output_bucket == f"yunpipe-g-upper-out-{ACCOUNT}"
    assert second.input_bucket == count.output_bucket and second.output_bucket == "g-out-bucket"
    assert second.queue.name == "yunpipe-g-upper-2-queue" and second.function.name == "yunpipe-g-upper-2-launcher"
    for resources in ({s.queue.name for s in model.steps}, {s.dead_letter_queue.name for s in model.steps},
                      {s.function.name for s in model.steps}, {s.task_definition.family for s in model.steps},
                      {s.task_role.name for s in model.steps}, {s.rule.name for s in model.steps}):
        assert len(resources) == 3, resources
    # Each repeat at its own settings.
    assert (first.task_definition.registration["cpu"], second.task_definition.registration["cpu"]) == ("1024", "2048")
    # Given the ids the numbering gives, the same model: it is the file with those ids.
    explicit = [steps[0], steps[1], {**steps[2], "id": "upper-2"}]
    assert compile_model(workflow(explicit, kind="sequence_run")) == model


def test_fan_out_routes_the_shared_bucket_through_eventbridge(algorithms):
    model = compile_model(workflow(FAN_OUT_JOIN_GATHER))
    assert [e.bucket for e in model.bucket_events] == ["g-in-bucket"]
    upper, count, both, gather = model.steps
    for step, key_filter in ((upper, None), (count, [{"suffix": ".txt"}])):
        assert step.notifications == () and len(step.event_rules) == 1
        pattern = json.loads(step.event_rules[0].pattern)
        assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
        assert pattern["detail"]["bucket"] == {"name": ["g-in-bucket"]}
        assert pattern["detail"].get("object", {}).get("key") == key_filter
        rule_permission = [p for p in step.permissions if p.source_arn == step.event_rules[0].arn]
        assert rule_permission and rule_permission[0].principal == "events.amazonaws.com"
    # Each intermediate bucket has one reader: plain S3 notifications, as in a chain.
    assert [n.bucket for n in both.notifications] == [upper.output_bucket, count.output_bucket]
    assert [p.sid for p in both.permissions] == ["yunpipe-s3-upper", "yunpipe-s3-count", "yunpipe-schedule"]
    assert [(n.bucket, n.suffix) for n in gather.notifications] == [(both.output_bucket, "_DONE")]


def test_prefix_and_suffix_together_become_one_wildcard():
    pattern = json.loads(compiler.object_created_pattern("b", "in/", ".txt"))
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "in/*.txt"}]


def test_a_join_step_gets_its_inputs_and_its_claims_in_config_and_policy(algorithms):
    model = compile_model(workflow(FAN_OUT_JOIN_GATHER))
    upper, count, both, _ = model.steps
    config = contract.LauncherConfig.from_env({k: v if isinstance(v, str) else "url" for k, v in both.function.environment.items()})
    assert [(j.step, j.bucket) for j in config.join] == [("upper", upper.output_bucket), ("count", count.output_bucket)]
    assert config.claim_bucket == model.reports_bucket and not config.gather
    statements = {s["Sid"]: s for s in both.launcher_role.policy["Statement"]}
    assert statements["FindJoinInputs"]["Resource"] == [f"arn:aws:s3:::{upper.output_bucket}/*",
                                                        f"arn:aws:s3:::{count.output_bucket}/*"]
    assert statements["ClaimJoins"]["Resource"] == f"arn:aws:s3:::{model.reports_bucket}/joins/g/both/*"
    reads = {s["Sid"]: s for s in both.task_role.policy["Statement"]}["ReadInputs"]["Resource"]
    assert reads == [f"arn:aws:s3:::{upper.output_bucket}/*", f"arn:aws:s3:::{count.output_bucket}/*"]
    # No other step may claim or look into other buckets.
    assert "ClaimJoins" not in {s["Sid"] for s in upper.launcher_role.policy["Statement"]}


def test_a_gather_step_lists_its_input_and_a_marker_free_one_has_no_trigger(algorithms):
    steps = [*FAN_OUT_JOIN_GATHER[:3], {"id": "all", "name": "summary", "after": ["both"], "gather": True}]
    gather = compile_model(workflow(steps)).steps[-1]
    assert gather.notifications == () and gather.event_rules == ()
    assert [p.sid for p in gather.permissions] == ["yunpipe-schedule"]
    statements = {s["Sid"]: s for s in gather.task_role.policy["Statement"]}
    assert statements["ListGathered"]["Action"] == "s3:ListBucket"
    environment = {k: v for k, v in gather.function.environment.items() if isinstance(v, str)}
    assert environment["YUNPIPE_GATHER"] == "1"


def test_several_final_steps_write_under_their_own_prefix(algorithms):
    model = compile_model(workflow([{"name": "upper"}, {"name": "count"}]))
    for step in model.steps:
        assert step.output_bucket == "g-out-bucket"
        environment = {e["name"]: e["value"] for e in step.task_definition.registration["containerDefinitions"][0]["environment"]}
        assert environment["YUNPIPE_OUTPUT_PREFIX"] == f"{step.name}/"
        writes = {s["Sid"]: s for s in step.task_role.policy["Statement"]}["WriteResultsAndReports"]["Resource"][0]
        assert writes == f"arn:aws:s3:::g-out-bucket/{step.name}/*"


def test_a_step_reads_and_lists_only_its_own_results_to_skip_what_is_done_and_a_forced_one_not_at_all(algorithms):
    model = compile_model(workflow([{"name": "upper", "force": True}, {"name": "count"}]))
    forced, skipping = model.steps
    statements = {s["Sid"]: s for s in skipping.task_role.policy["Statement"]}
    assert statements["ReadResults"]["Resource"] == "arn:aws:s3:::g-out-bucket/count/*"
    assert statements["ListResults"]["Resource"] == "arn:aws:s3:::g-out-bucket"
    assert statements["ListResults"]["Condition"] == {"StringLike": {"s3:prefix": "count/*"}}
    assert not {"ReadResults", "ListResults"} & {s["Sid"] for s in forced.task_role.policy["Statement"]}
    for step, force in ((forced, True), (skipping, False)):
        environment = {e["name"]: e["value"] for e in step.task_definition.registration["containerDefinitions"][0]["environment"]}
        assert contract.WorkerConfig.from_env({**environment, "YUNPIPE_QUEUE_URL": "url"}).force is force


def test_per_step_overrides_reach_the_task(algorithms):
    steps = [{"name": "upper", "cpu": 2, "memory": 5000, "timeout_seconds": 42, "ephemeral_storage_gib": 30,
              "concurrency": 4, "max_receive_count": 7}]
    step = compile_model(workflow(steps, kind="single_run")).steps[0]
    registration = step.task_definition.registration
    assert (registration["cpu"], registration["memory"]) == ("2048", "5120")
    assert "step upper asks for" in step.task_definition.sizing
    assert registration["ephemeralStorage"] == {"sizeInGiB": 30}
    environment = {e["name"]: e["value"] for e in registration["containerDefinitions"][0]["environment"]}
    worker = contract.WorkerConfig.from_env({**environment, "YUNPIPE_QUEUE_URL": "url"})
    assert (worker.timeout_seconds, worker.max_receive_count) == (42, 7)
    assert step.function.environment["YUNPIPE_CONCURRENCY"] == "4"


def test_files_per_task_and_spot_capacity_reach_the_launcher_and_only_spot_adds_cluster_providers(algorithms):
    plain = compile_model(workflow([{"name": "upper"}, {"name": "count"}], kind="sequence_run"))
    spot = compile_model(workflow([{"name": "upper", "files_per_task": 5},
                                   {"name": "count", "capacity": "FARGATE_SPOT"}], kind="sequence_run"))

    assert plain.cluster_capacity_providers == ()
    assert spot.cluster_capacity_providers[0].capacity_providers == ("FARGATE", "FARGATE_SPOT")
    configs = [contract.LauncherConfig.from_env(queue_urls_filled(s.function.environment)) for s in spot.steps]
    assert [(c.files_per_task, c.capacity_provider, c.launch_type) for c in configs] == [
        (5, "", "FARGATE"), (contract.DEFAULT_FILES_PER_TASK, "FARGATE_SPOT", "FARGATE")]
    # Without Spot every launcher keeps the plain launch type.
    assert {s.function.environment["YUNPIPE_CAPACITY_PROVIDER"] for s in plain.steps} == {""}


@pytest.mark.parametrize("step, field, words", [
    ({"name": "upper", "capacity": "FARGATE_SPOT"}, "process.algorithms[0].capacity", "launch_type EC2"),
    ({"name": "upper", "capacity": "SPOT"}, "process.algorithms[0].capacity", "FARGATE_SPOT"),
    ({"name": "upper", "files_per_task": 0}, "process.algorithms[0].files_per_task", "from 1 to 1000"),
])
def test_bad_capacity_and_files_per_task_name_the_field(step, field, words):
    error = error_of(workflow([step], kind="single_run", launch_type="EC2"))
    assert error.field == field and words in str(error)


def test_an_override_that_fargate_cannot_size_names_the_workflow(algorithms):
    record_algorithm("huge", "user/huge:1", variables=[], memory={"suggested": 200000})
    with pytest.raises(InputError) as caught:
        compile_model(workflow([{"name": "huge", "cpu": 2}], kind="single_run"))
    assert caught.value.source == "wf.json" and caught.value.field == "cpu/memory"


def test_a_chain_lays_out_as_before(algorithms):
    model = compile_model(workflow([{"name": "upper"}, {"name": "count"}], kind="sequence_run"))
    assert model.bucket_events == ()
    assert [(s.input_bucket, s.output_bucket) for s in model.steps] == [
        ("g-in-bucket", f"yunpipe-g-upper-out-{ACCOUNT}"), (f"yunpipe-g-upper-out-{ACCOUNT}", "g-out-bucket")]
    assert [[p.sid for p in s.permissions] for s in model.steps] == [["yunpipe-s3", "yunpipe-schedule"]] * 2


def test_describe_and_dot_show_the_graph(algorithms):
    layout = compile_model(workflow(FAN_OUT_JOIN_GATHER)).layout
    lines = graph.describe(layout)
    assert lines[0] == "upper [upper@1]: g-in-bucket -> s3://yunpipe-g-upper-out-123456789012/"
    assert lines[1].startswith("count [count@1]: g-in-bucket suffix '.txt' ->")
    assert lines[2].startswith("both [pair@1]: join on the key of yunpipe-g-upper-out-123456789012 (upper) + ")
    assert lines[3].startswith("all [summary@1]: gather all of ") and "when a key ending in '_DONE' arrives" in lines[3]
    text = graph.dot(layout, "g")
    assert text.startswith('digraph "g" {') and text.rstrip().endswith("}")
    assert '"s3://g-in-bucket" -> "upper";' in text and '"both" -> "s3://yunpipe-g-both-out-123456789012";' in text
    assert '[label="both\\npair@1\\n(join)"]' in text
    assert graph.Layout.from_document(layout.to_document()) == layout


def test_a_graph_deploys_redeploys_with_no_change_and_cleans_up(moto, write_workflow):
    """Against moto held to AWS's rules: the shared input bucket sends its events to EventBridge,
    each fan-out step has its rule; a second setup-pipe changes nothing; clean-up removes all."""
    import boto3
    from test_setup_pipe import mutating, tagged_arns

    from yunpipe import cli
    from yunpipe.aws.facade import watch_calls

    for name in ("upper", "count", "pair", "summary"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    s3, events = boto3.client("s3", region_name="us-east-1"), boto3.client("events", region_name="us-east-1")
    s3.create_bucket(Bucket="g-in-bucket")  # the user's: it stays, as it was, after clean-up
    path = write_workflow(workflow(FAN_OUT_JOIN_GATHER))
    assert cli.setup_pipe_main(["-f", path]) == 0
    assert s3.get_bucket_notification_configuration(Bucket="g-in-bucket").get("EventBridgeConfiguration") == {}
    rules = {r["Name"]: r for r in events.list_rules(NamePrefix="yunpipe-g-")["Rules"]}
    assert {"yunpipe-g-upper-from-input", "yunpipe-g-count-from-input"} <= set(rules)
    count_rule = json.loads(rules["yunpipe-g-count-from-input"]["EventPattern"])
    assert count_rule["detail"]["object"]["key"] == [{"suffix": ".txt"}]
    targets = events.list_targets_by_rule(Rule="yunpipe-g-count-from-input")["Targets"]
    assert [t["Arn"] for t in targets] == [f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:yunpipe-g-count-launcher"]
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    assert mutating(calls) == []
    assert cli.clean_up_main(["g", "--purge"]) == 0
    assert tagged_arns("g") == [] and events.list_rules(NamePrefix="yunpipe-g-")["Rules"] == []
    assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket="g-in-bucket")
