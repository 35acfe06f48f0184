"""`yunpipe doctor`: each check against the tests' strict moto with real resources, its exit
statuses (0, 1 when setup-pipe would stop, 2 for bad input), and that setup-pipe stops on the
same findings, with the same words, before creating anything."""
import json

import boto3
import pytest
from helpers import REGION, foreign_notification, free_port, record_algorithm, single_run
from moto.server import ThreadedMotoServer

from yunpipe import cli
from yunpipe.aws import announcement
from yunpipe.aws.facade import is_mutating, watch_calls

ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/change123:1"


def client(service, region=REGION):
    return boto3.client(service, region_name=region)


def doctor(capsys, *args):
    """doctor's exit status and its lines; it never changes anything."""
    with watch_calls() as calls:
        status = cli.main(["doctor", *args])
    assert calls and [c for c in calls if is_mutating(c[1])] == []
    return status, capsys.readouterr().out.splitlines()


def line(lines, start):
    [found] = [text for text in lines if text.startswith(start)]
    return found


def workflow(**step) -> dict:
    document = single_run()
    document["process"]["algorithms"][0].update(step)
    return document


def test_a_fresh_account_blocks_nothing_and_says_what_it_lacks(moto, change123, write_workflow, capsys):
    status, lines = doctor(capsys, "-f", write_workflow(workflow(gpu=1)))
    assert status == 0
    assert line(lines, "✓ identity: ") == ("✓ identity: arn:aws:sts::123456789012:user/moto in AWS account "
                                          "123456789012 region us-east-1")
    assert line(lines, "✓ instance type g4dn.xlarge: ").startswith(
        "✓ instance type g4dn.xlarge: offered in us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f; "
        "4 vCPU, 16384 MiB, 1 GPU(s)")
    for role, service in (("AWSServiceRoleForECS", "ecs"), ("AWSServiceRoleForAutoScaling", "autoscaling")):
        assert line(lines, f"! service-linked role {role}: ").endswith(
            f"`aws iam create-service-linked-role --aws-service-name {service}.amazonaws.com`")
    assert line(lines, "✓ Lambda concurrency: ") == ("✓ Lambda concurrency: 1000 unreserved executions: room to "
                                                    "reserve one for each of the 1 launcher(s)")
    # A new account's G and VT quota is 0: no GPU task can start.
    assert line(lines, "! quota Running On-Demand G and VT instances: ") == (
        "! quota Running On-Demand G and VT instances: 0 vCPU, less than one task of step(s) change123-s3 needs (4): "
        "none of their tasks can start until it is raised — request 40 vCPU: `aws service-quotas "
        "request-service-quota-increase --service-code ec2 --quota-code L-DB2E81BA --desired-value 40 --region "
        "us-east-1`")
    assert "✓ input bucket demo-in-bucket: setup-pipe creates it" in lines
    assert "✓ notification yunpipe:demo:change123-s3 on demo-in-bucket: no other notification on the bucket " \
           "overlaps it" in lines
    assert "✓ image user/change123-s3:1: not in ECR: not checked (tasks pull it from its registry)" in lines
    assert lines[-1] == "Nothing stops setup-pipe; 3 warning(s) (!)."

    # What setup-pipe creates, doctor then finds.
    client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    client("iam").create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com")
    client("service-quotas").request_service_quota_increase(ServiceCode="ec2", QuotaCode="L-DB2E81BA", DesiredValue=40)
    status, lines = doctor(capsys, "-f", write_workflow(workflow(gpu=1)))
    assert status == 0 and lines[-1] == "Nothing stops setup-pipe; 0 warning(s) (!)."
    assert "✓ service-linked role AWSServiceRoleForECS: exists" in lines
    assert line(lines, "✓ quota Running On-Demand G and VT instances: ").startswith(
        "✓ quota Running On-Demand G and VT instances: 40 vCPU; step(s) change123-s3 use at most 40")


def test_fargate_quotas_too_low_for_the_caps_or_for_one_task(moto, change123, write_workflow, capsys):
    document = {"name": "demo", "input_s3_name": "demo-in-bucket", "output_s3_name": "demo-out-bucket",
                "process": {"type": "sequence_run", "algorithms": [
                    {"name": "change123-s3", "variables": {"TEST_ENV": "x"}},
                    {"name": "change123-s3", "id": "big", "variables": {"TEST_ENV": "x"}, "capacity": "FARGATE_SPOT",
                     "cpu": 8, "memory": 16384}]}}
    status, lines = doctor(capsys, "-f", write_workflow(document))
    assert status == 0
    # 10 tasks of 1 vCPU at the default cap, in a new account's 6.
    assert line(lines, "! quota Fargate On-Demand vCPU resource count: ") == (
        "! quota Fargate On-Demand vCPU resource count: 6 vCPU; step(s) change123-s3 may use 10 at their concurrency "
        "caps: at most 6 task(s) at once, the others wait — request 10 vCPU: `aws service-quotas "
        "request-service-quota-increase --service-code fargate --quota-code L-3032A538 --desired-value 10 --region "
        "us-east-1`")
    assert line(lines, "! quota Fargate Spot vCPU resource count: ").startswith(
        "! quota Fargate Spot vCPU resource count: 6 vCPU, less than one task of step(s) big needs (8)")

    client("service-quotas").request_service_quota_increase(ServiceCode="fargate", QuotaCode="L-3032A538",
                                                            DesiredValue=10)
    status, lines = doctor(capsys, "-f", write_workflow(document))
    assert line(lines, "✓ quota Fargate On-Demand vCPU resource count: ").startswith(
        "✓ quota Fargate On-Demand vCPU resource count: 10 vCPU; step(s) change123-s3 use at most 10")


def test_too_few_unreserved_lambda_executions_is_a_warning(moto, change123, write_workflow, capsys):
    moto.lambda_concurrency_limit = 100  # AWS keeps 100 unreserved: none left to reserve
    status, lines = doctor(capsys, "-f", write_workflow(single_run()))
    assert status == 0
    assert line(lines, "! Lambda concurrency: ").startswith(
        "! Lambda concurrency: 100 unreserved executions and AWS keeps 100: the 1 launcher(s) will run unreserved")
    # Without a workflow: the account alone.
    status, lines = doctor(capsys)
    assert status == 0 and lines[0].startswith("✓ identity: ") and lines[1].startswith("! Lambda concurrency: 100 ")


def test_a_missing_ecr_image_is_a_warning_until_it_is_pushed(moto, write_workflow, capsys):
    record_algorithm("change123-s3", ECR_IMAGE)
    path = write_workflow(single_run())
    name = f"image {ECR_IMAGE}"
    status, lines = doctor(capsys, "-f", path)
    assert status == 0
    assert line(lines, f"! {name}: ") == (
        f"! {name}: no repository change123 in account 123456789012's registry in us-east-1: its tasks cannot start — "
        "push it (`yunpipe wrap -f ALGORITHM.json -r ecr`), or fix the algorithm's image")
    ecr = client("ecr")
    ecr.create_repository(repositoryName="change123")
    assert line(doctor(capsys, "-f", path)[1], f"! {name}: ").startswith(
        f"! {name}: no image 1 in repository change123: its tasks cannot start")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": "sha256:" + "0" * 64, "size": 1,
                           "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}
    ecr.put_image(repositoryName="change123", imageManifest=json.dumps(manifest), imageTag="1")
    assert f"✓ {name}: in ECR" in doctor(capsys, "-f", path)[1]


def _setup_refuses(path, *args):
    """setup-pipe's exit status, having changed nothing."""
    with watch_calls() as calls:
        status = cli.setup_pipe_main(["-f", path, *args])
    assert [c for c in calls if is_mutating(c[1])] == []
    return status


def test_an_overlapping_notification_blocks_and_setup_pipe_refuses_it_in_the_same_words(
        moto, change123, write_workflow, capsys):
    foreign_notification(moto, "demo-in-bucket", ["s3:ObjectCreated:*"])
    path = write_workflow(single_run())
    status, lines = doctor(capsys, "-f", path)
    assert status == 1 and lines[-1] == "1 problem(s) would stop setup-pipe (✗), 1 warning(s) (!)."
    refusal = f"{path}: filter: expected a prefix/suffix that does not overlap notification 'theirs'"
    assert line(lines, "✗ notification yunpipe:demo:change123-s3 on demo-in-bucket: ").startswith(
        f"✗ notification yunpipe:demo:change123-s3 on demo-in-bucket: {refusal}")
    assert "✓ input bucket demo-in-bucket: exists in us-east-1" in lines
    assert _setup_refuses(path) == 2
    assert refusal in capsys.readouterr().err


def test_an_instance_type_not_offered_blocks_and_setup_pipe_refuses_it(moto, change123, write_workflow, capsys):
    # moto's offerings, as AWS's: me-central-1 has no g4dn.xlarge in any zone.
    path = write_workflow(workflow(gpu=1, memory=16384))
    status, lines = doctor(capsys, "-f", path, "--region", "me-central-1")
    assert status == 1
    refusal = (f"{path}: process.algorithms[0].instance_type: expected an instance type offered in me-central-1: "
               "no Availability Zone of me-central-1 offers g4dn.xlarge")
    assert line(lines, "✗ instance type g4dn.xlarge: ") == (
        f"✗ instance type g4dn.xlarge: {refusal} — pick a type that `aws ec2 describe-instance-type-offerings "
        "--location-type availability-zone` lists in the subnets' zones, or give subnets in zones that offer it")
    assert "me-central-1" in line(lines, "✓ identity: ")
    assert _setup_refuses(path, "--region", "me-central-1") == 2
    assert refusal in capsys.readouterr().err

    # Offered in us-east-1, but one instance has too little memory: every finding, setup-pipe's first.
    status, lines = doctor(capsys, "-f", path)
    assert status == 1
    assert line(lines, "✗ instance type g4dn.xlarge: ").endswith(
        "got 16384 MiB: pick a larger instance type — ask for less memory, or pick a larger instance type")


def test_a_region_without_the_ecs_ami_shows_every_finding(moto, change123, write_workflow, capsys):
    """moto's mx-central-1, as AWS's newest regions, has neither m5.large nor the ECS-optimized
    AMI's parameter: doctor names both (the launch template kind's check); setup-pipe stops at the first."""
    status, lines = doctor(capsys, "-f", write_workflow(workflow(instance_type="m5.large")), "--region", "mx-central-1")
    assert status == 1
    assert "no Availability Zone of mx-central-1 offers m5.large" in line(lines, "✗ instance type m5.large: ")
    assert line(lines, "✗ launch template yunpipe-demo-ec2-m5-large: ").endswith(
        "instance_type: expected a region with an ECS-optimized AMI for m5.large: mx-central-1 has no parameter "
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id")


def test_a_bucket_in_another_region_blocks_and_setup_pipe_refuses_it(moto, change123, write_workflow, capsys):
    client("s3", "eu-west-1").create_bucket(Bucket="demo-out-bucket",
                                            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    path = write_workflow(single_run())
    status, lines = doctor(capsys, "-f", path)
    assert status == 1
    refusal = (f"{path}: output_s3_name: expected a bucket in the pipeline's region us-east-1: demo-out-bucket is "
               "in eu-west-1")
    assert line(lines, "✗ output bucket demo-out-bucket: ").startswith(f"✗ output bucket demo-out-bucket: {refusal}")
    assert _setup_refuses(path) == 2
    assert refusal in capsys.readouterr().err


def test_after_setup_pipe_its_pipeline_checks_out_and_is_not_deployed_twice(moto, change123, write_workflow, capsys):
    path = write_workflow(single_run())
    assert cli.setup_pipe_main(["-f", path]) == 0
    capsys.readouterr()
    status, lines = doctor(capsys, "-f", path)
    assert status == 0
    assert "✓ input bucket demo-in-bucket: exists in us-east-1" in lines
    assert line(lines, "✓ Lambda concurrency: ").startswith("✓ Lambda concurrency: 999 unreserved executions")
    # The same name in another region: setup-pipe would lose track of the first.
    status, lines = doctor(capsys, "-f", path, "--region", "eu-west-1")
    refusal = f"{path}: name: pipeline 'demo' already lives in AWS account 123456789012 region us-east-1"
    assert status == 1 and line(lines, "✗ pipeline demo: ").startswith(f"✗ pipeline demo: {refusal}")
    assert _setup_refuses(path, "--region", "eu-west-1") == 2
    assert refusal in capsys.readouterr().err


@pytest.mark.parametrize("document, message", [
    ({"name": "demo"}, "input_s3_name: missing required field"),
    (workflow(concurrency=0), "process.algorithms[0].concurrency: expected a number of tasks from 1 to 100"),
])
def test_a_bad_workflow_file_is_exit_2_before_any_aws_call(change123, write_workflow, capsys, document, message):
    path = write_workflow(document)
    with watch_calls() as calls:
        assert cli.main(["doctor", "-f", path]) == 2
    assert calls == []
    assert f"error: {path}: {message}" in capsys.readouterr().err


def test_no_credentials_is_one_blocking_line(aws_env, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✗ identity: no AWS credentials found") and len(out) == 2


def test_the_local_cloud_answers_doctor_as_a_new_account_would(aws_env, change123, write_workflow, capsys):
    """--local: the endpoint a running local cloud announced (here a bare moto server on loopback
    with the local cloud's Service Quotas answers)."""
    from yunpipe.local.moto_patches import compute_quotas_answered, default_vpc_routes_to_internet
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    with compute_quotas_answered(), default_vpc_routes_to_internet():
        server.start()
        try:
            announcement.write_state(f"http://127.0.0.1:{server._port}", server._port)
            assert cli.main(["doctor", "--local", "-f", write_workflow(single_run())]) == 0
        finally:
            server.stop()
    lines = capsys.readouterr().out.splitlines()
    assert line(lines, "✓ identity: ").endswith(" in the local cloud")
    assert "✓ Lambda concurrency: no account limit reported (an emulator): launchers reserve one execution each" in lines
    assert line(lines, "! quota Fargate On-Demand vCPU resource count: 6 vCPU; ")
