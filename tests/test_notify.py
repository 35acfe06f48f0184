"""A workflow's `notify` (issue 23, item 4): checked at plan time, deployed as the pipeline's SNS
topic and its subscriptions (moto, held to SNS's rules by the strict layer), kept as they are by a
second setup-pipe, changed with the list, and removed by clean-up; the topic's ARN reaches the
workers, the launchers and the model."""
import http.server
import json
import queue
import threading

import boto3
import pytest
from helpers import REGION, queue_urls_filled, single_run
from moto.sns.models import sns_backends
from test_setup_pipe import mutating, tagged_arns

from yunpipe import cli
from yunpipe.aws.facade import watch_calls
from yunpipe.engine import compiler
from yunpipe.engine.target import Target
from yunpipe.errors import InputError
from yunpipe.local.clients import local_client
from yunpipe.local.cloud import LocalCloud
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.runtime import contract
from yunpipe.runtime.accounting import notify
from yunpipe.specs.workflow import parse_workflow

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:yunpipe-demo-notify"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:lab-events"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:lab-hook"
STEP = "change123-s3"
NOTIFY = ["alice@example.org", "https://hooks.example.org/yunpipe", QUEUE, FUNCTION]


def sns():
    return boto3.client("sns", region_name=REGION)


def subscribed(topic=TOPIC):
    return sorted((s["Protocol"], s["Endpoint"]) for s in sns().list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"])


def parse(notify):
    return parse_workflow(single_run(notify=notify), "workflow.json")


# ---------------------------------------------------------------------------- the field


def test_each_kind_of_subscriber_is_told_by_its_form():
    spec = parse([*NOTIFY, "http://127.0.0.1:8080/hook", "arn:aws:lambda:eu-west-1:123456789012:function:f:live"])
    assert [(s.protocol, s.endpoint, s.field) for s in spec.notify] == [
        ("email", "alice@example.org", "notify[0]"), ("https", "https://hooks.example.org/yunpipe", "notify[1]"),
        ("sqs", QUEUE, "notify[2]"), ("lambda", FUNCTION, "notify[3]"),
        ("http", "http://127.0.0.1:8080/hook", "notify[4]"),
        ("lambda", "arn:aws:lambda:eu-west-1:123456789012:function:f:live", "notify[5]")]
    assert parse_workflow(single_run(), "workflow.json").notify == ()


@pytest.mark.parametrize("notify, field, expected", [
    (["alice@example"], "notify[0]", "expected an e-mail address such as someone@example.org"),
    (["alice@exa mple.org"], "notify[0]", "expected an e-mail address"),
    (["a" * 65 + "@example.org"], "notify[0]", "at most 64 characters before the '@'"),
    (["someone"], "notify[0]", "expected an e-mail address, an https:// URL, an SQS queue ARN or a Lambda function ARN"),
    ([" alice@example.org"], "notify[0]", "without spaces around it"),
    (["http://hooks.example.org/x"], "notify[0]", "expected https://, got 'http://hooks.example.org/x'"),
    (["ftp://hooks.example.org/x"], "notify[0]", "not ftp://"),
    (["https://"], "notify[0]", "a host name"),
    (["https://hooks.example.org:port/"], "notify[0]", "expected an https:// URL"),
    (["https://hooks.example.org/a b"], "notify[0]", "without spaces or control characters"),
    ([f"arn:aws:sns:{REGION}:{ACCOUNT}:topic"], "notify[0]", "got an ARN of service 'sns'"),
    ([f"arn:aws:sqs:useast1:{ACCOUNT}:q"], "notify[0]", "expected a region such as us-east-1 in the ARN"),
    ([f"arn:aws:sqs:{REGION}:12345:q"], "notify[0]", "expected a 12-digit account id"),
    ([f"arn:aws:sqs:{REGION}:{ACCOUNT}:q.fifo"], "notify[0]", "expected a standard SQS queue"),
    ([f"arn:aws:sqs:{REGION}:{ACCOUNT}:" + "q" * 81], "notify[0]", "at most 80 letters"),
    ([f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:x:1"], "notify[0]", "expected function:NAME"),
    (["arn:azure:sqs:us-east-1:123456789012:q"], "notify[0]", "expected an ARN such as"),
    (["alice@example.org", "alice@EXAMPLE.org"], "notify[1]", "is already notify[0]"),
    ([QUEUE, QUEUE], "notify[1]", "expected each subscriber once"),
    ([f"u{i}@example.org" for i in range(21)], "notify", "a list of at most 20"),
    ("alice@example.org", "notify", "expected array"),
])
def test_a_bad_subscriber_is_refused_naming_the_file_and_the_entry(notify, field, expected):
    with pytest.raises(InputError) as caught:
        parse(notify)
    assert caught.value.source == "workflow.json" and caught.value.field == field
    assert expected in caught.value.expected


AWS = Target(ACCOUNT, REGION)


def compile_model(notify, target=AWS):
    return compiler.build_model(resolve_workflow(parse(notify), AlgorithmRegistry()), target)


@pytest.mark.parametrize("notify, target, expected", [
    (["http://localhost:9000/"], AWS, "works only on the local cloud"),
    ([QUEUE], Target(ACCOUNT, "cn-north-1"), "expected an ARN of partition aws-cn"),
])
def test_what_depends_on_the_target_is_refused_when_compiled(change123, notify, target, expected):
    with pytest.raises(InputError) as caught:
        compile_model(notify, target)
    assert caught.value.field == "notify[0]" and expected in caught.value.expected


def test_http_to_this_machine_is_taken_on_the_local_cloud(change123):
    model = compile_model(["http://localhost:9000/"], Target(ACCOUNT, REGION, local=True))
    assert [(s.protocol, s.endpoint) for s in model.subscriptions] == [("http", "http://localhost:9000/")]


def test_the_topic_reaches_workers_launchers_and_roles_only_with_notify(change123):
    plain = compile_model([])
    assert plain.topic == () and plain.subscriptions == () and plain.topic_arn == ""
    step = plain.steps[0]
    assert all(s["Sid"] != "Notify" for role in (step.task_role, step.launcher_role) for s in role.policy["Statement"])

    model = compile_model(NOTIFY)
    assert model.topic_arn == TOPIC
    step = model.steps[0]
    environment = {e["name"]: e["value"] for e in
                   step.task_definition.registration["containerDefinitions"][0]["environment"]}
    assert contract.WorkerConfig.from_env({**environment, contract.QUEUE_URL_VARIABLE: "q"}).topic_arn == TOPIC
    assert contract.LauncherConfig.from_env(queue_urls_filled(step.function.environment)).topic_arn == TOPIC
    for role in (step.task_role, step.launcher_role):
        notify = [s for s in role.policy["Statement"] if s["Sid"] == "Notify"]
        assert notify == [{"Sid": "Notify", "Effect": "Allow", "Action": "sns:Publish", "Resource": TOPIC}]
    assert all(s["Sid"] != "Notify" for s in step.execution_role.policy["Statement"])
    # The topic's own policy: the pipeline's publishers, and nobody without TLS.
    publish, tls = model.topic[0].policy["Statement"]
    assert publish["Principal"] == {"AWS": [step.task_role.arn, step.launcher_role.arn]}
    assert (publish["Action"], publish["Resource"]) == ("sns:Publish", TOPIC)
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# ---------------------------------------------------------------------------- deployed


@pytest.fixture
def notified(moto, change123, write_workflow):
    path = write_workflow(single_run(notify=NOTIFY))
    assert cli.setup_pipe_main(["-f", path]) == 0
    return path


def test_setup_pipe_creates_the_topic_tagged_and_subscribes_each_entry(capsys, notified):
    assert subscribed() == sorted([("email", NOTIFY[0]), ("https", NOTIFY[1]), ("sqs", QUEUE), ("lambda", FUNCTION)])
    assert TOPIC in tagged_arns()
    policy = json.loads(sns().get_topic_attributes(TopicArn=TOPIC)["Attributes"]["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["PipelinePublishes", "PublishOnlyOverTls"]
    out = capsys.readouterr().out
    # What each subscriber's side does before SNS delivers: said once, by setup-pipe.
    assert "alice@example.org gets an e-mail from AWS to confirm" in out
    assert f"--principal sns.amazonaws.com --source-arn {TOPIC}" in out
    assert "sqs:SendMessage to principal sns.amazonaws.com" in out


def test_a_second_setup_makes_no_mutating_call(notified, capsys):
    capsys.readouterr()
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", notified]) == 0
    assert calls and mutating(calls) == []
    assert "nothing to change" in capsys.readouterr().out


def test_a_topic_changed_by_hand_is_set_back_one_attribute_at_a_time(notified):
    assert sns().get_topic_attributes(TopicArn=TOPIC)["Attributes"]["DisplayName"] == "yunpipe demo"
    sns().set_topic_attributes(TopicArn=TOPIC, AttributeName="DisplayName", AttributeValue="renamed")
    sns().set_topic_attributes(TopicArn=TOPIC, AttributeName="Policy", AttributeValue=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sns:Publish",
                                                 "Resource": TOPIC}]}))
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", notified]) == 0
    assert mutating(calls) == [("sns", "SetTopicAttributes")] * 2
    attributes = sns().get_topic_attributes(TopicArn=TOPIC)["Attributes"]
    assert attributes["DisplayName"] == "yunpipe demo"
    assert [s["Sid"] for s in json.loads(attributes["Policy"])["Statement"]] == ["PipelinePublishes", "PublishOnlyOverTls"]


def test_a_changed_list_subscribes_and_unsubscribes_only_the_difference(moto, notified, write_workflow):
    moto.confirm(TOPIC, NOTIFY[1])  # the endpoint visited its SubscribeURL
    changed = write_workflow(single_run(notify=[NOTIFY[0], QUEUE, "bob@example.org"]))
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", changed]) == 0
    assert sorted(mutating(calls)) == [("sns", "Subscribe"), ("sns", "Unsubscribe"), ("sns", "Unsubscribe")]
    assert subscribed() == sorted([("email", NOTIFY[0]), ("sqs", QUEUE), ("email", "bob@example.org")])


def test_a_subscription_still_awaiting_confirmation_is_not_asked_again_and_left_to_lapse(moto, notified,
                                                                                       write_workflow, capsys):
    pending = [s for s in sns().list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"]
               if s["SubscriptionArn"] == "PendingConfirmation"]
    assert sorted(s["Endpoint"] for s in pending) == sorted(NOTIFY[:2])
    capsys.readouterr()
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", notified]) == 0
    assert mutating(calls) == []  # subscribing again would send another confirmation
    assert "alice@example.org has not confirmed its subscription to topic yunpipe-demo-notify yet" in (
        capsys.readouterr().out)
    # Dropped from the list: SNS has no ARN to unsubscribe it by; unconfirmed, it lapses.
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", write_workflow(single_run(notify=NOTIFY[1:]))]) == 0
    assert mutating(calls) == []
    assert ("email", NOTIFY[0]) in subscribed()


def test_dropping_notify_removes_the_topic_and_the_roles_permission(notified, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    assert TOPIC not in [t["TopicArn"] for t in sns().list_topics()["Topics"]]
    assert sns().list_subscriptions()["Subscriptions"] == []
    policy = boto3.client("iam").get_role_policy(RoleName="yunpipe-demo-change123-s3-task-role", PolicyName="yunpipe")
    assert "sns:Publish" not in json.dumps(policy["PolicyDocument"])


@pytest.mark.parametrize("lost_state", [False, True])
def test_clean_up_deletes_the_topic_and_its_subscriptions(notified, lost_state):
    if lost_state:
        from yunpipe.engine.state import state_path
        state_path("demo").unlink()
    with watch_calls() as calls:
        assert cli.clean_up_main(["demo"]) == 0
    assert [c for c in mutating(calls) if c[0] == "sns"] == [("sns", "DeleteTopic")]
    assert sns().list_topics()["Topics"] == [] and sns().list_subscriptions()["Subscriptions"] == []


# ---------------------------------------------------------------------------- delivered, on the local cloud


class Endpoint(http.server.BaseHTTPRequestHandler):
    """A subscriber's HTTP endpoint: keeps each POST (headers and JSON body) and answers 200."""

    received: "queue.Queue[tuple[dict, dict]]"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.put(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args):
        pass


@pytest.fixture
def endpoint():
    """A real HTTP server on this machine, in a thread: its URL and what it receives."""
    received: queue.Queue = queue.Queue()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Hook", (Endpoint,), {"received": received}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def local_cloud(aws_env, docker_client):
    with LocalCloud(port=0, regions=[REGION], docker_client=docker_client) as cloud:
        yield cloud


def test_the_local_cloud_delivers_a_pipelines_messages_to_a_real_http_endpoint(local_cloud, endpoint, change123,
                                                                              write_workflow):
    url, received = endpoint
    workflow = write_workflow(single_run(notify=[url, "http://127.0.0.1:1/nobody-listens"]))
    assert cli.setup_pipe_main(["--local", "-f", workflow]) == 0
    sns, s3 = (local_client(service, local_cloud.endpoint_url, REGION) for service in ("sns", "s3"))
    # A subscriber that is down delays and fails nothing: SNS delivers after Publish, and retries.
    assert notify.publish(sns, TOPIC, "yunpipe demo: run r1 settled", {"event": "settled", "run": "r1", "files": 20})
    headers, body = received.get(timeout=30)
    assert (headers["x-amz-sns-message-type"], headers["x-amz-sns-topic-arn"]) == ("Notification", TOPIC)
    assert (body["Type"], body["TopicArn"], body["Subject"]) == ("Notification", TOPIC, "yunpipe demo: run r1 settled")
    assert json.loads(body["Message"]) == {"event": "settled", "run": "r1", "files": 20}
    # A run's first dead-lettered file is announced once, whichever worker tells first.
    record = {"pipeline": "demo", "run": "r1", "step": STEP, "key": "data/bad.txt", "outcome": "failed",
              "reason": "exit status 3", "finished_at": "2026-12-07T13:00:00Z", "log_tail": "refusing"}
    reports = f"yunpipe-demo-reports-{ACCOUNT}"
    assert notify.first_failure(s3, sns, reports, TOPIC, record)
    assert not notify.first_failure(s3, sns, reports, TOPIC, {**record, "key": "data/worse.txt"})
    _, body = received.get(timeout=30)
    message = json.loads(body["Message"])
    assert (message["event"], message["key"], message["step"], message["reason"]) == (
        "first-failure", "data/bad.txt", STEP, "exit status 3")
    assert body["Subject"] == f"yunpipe demo: data/bad.txt failed in {STEP} (failed)"
    # Nothing published for the second failure: the topic has sent two messages in all.
    assert len(sns_backends[ACCOUNT][REGION].topics[TOPIC].sent_notifications) == 2
    assert cli.clean_up_main(["--local", "--purge", "demo"]) == 0
