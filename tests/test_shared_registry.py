"""Shared algorithm registries on S3 (issue 10), against moto: alice and bob are two colleagues
with a home each (YUNPIPE_HOME), sharing s3://team-algorithms/lab."""
import json
import threading
from pathlib import Path

import boto3
import pytest
from helpers import REGION, single_run

from yunpipe import cli
from yunpipe.aws.facade import is_mutating, watch_calls
from yunpipe.aws.location import AwsOptions, open_aws
from yunpipe.errors import InputError, YunpipeError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.remote import RemoteRegistry, parse_remote
from yunpipe.specs.algorithm import parse_algorithm

BUCKET = "team-algorithms"
REMOTE = f"s3://{BUCKET}/lab"
EXAMPLE = json.loads(Path("examples/change123/change123-s3.json").read_text())


def digest(char: str) -> str:
    return "sha256:" + char * 64


def spec(name: str = "change123-s3", command: str | None = None):
    document = {**EXAMPLE, "name": name}
    if command:
        document["run_command"] = command
    return parse_algorithm(document, f"{name}.json")


def s3():
    return boto3.client("s3", region_name=REGION)


def remote_document(key: str) -> dict:
    return json.loads(s3().get_object(Bucket=BUCKET, Key=key)["Body"].read())


@pytest.fixture
def homes(moto, tmp_path, monkeypatch):
    """`homes("alice")` makes alice's home the current one; returns its algorithm folder."""
    s3().create_bucket(Bucket=BUCKET)

    def become(who: str) -> Path:
        monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / who))
        return tmp_path / who / "algorithms"
    return become


@pytest.fixture
def alice_published(homes, capsys):
    """alice wrapped change123-s3 twice (pushed, so pinned by digest) and published both; her
    algorithm folder and what publish printed."""
    alice = homes("alice")
    registry = AlgorithmRegistry()
    registry.record(spec(), "registry.example/lab/change123-s3:1", digest("a"))
    registry.record(spec(command="python3 /change123.py $input $output --v2"), "registry.example/lab/change123-s3:2",
                    digest("b"))
    assert cli.main(["algorithms", "publish", "change123-s3@1", "change123-s3", "--to", REMOTE]) == 0
    return alice, capsys.readouterr().out


def test_alice_publishes_and_bob_pulls_the_identical_record(alice_published, homes, capsys):
    alice, out = alice_published
    assert f"published change123-s3@1 to {REMOTE}/change123-s3/1.json" in out
    assert f"published change123-s3@2 to {REMOTE}/change123-s3/2.json" in out
    keys = [o["Key"] for o in s3().list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == ["lab/change123-s3/1.json", "lab/change123-s3/2.json"]
    assert remote_document("lab/change123-s3/2.json")["digest"] == digest("b")

    bob = homes("bob")
    assert cli.main(["algorithms", "pull", "change123-s3", "--from", REMOTE]) == 0
    assert "pulled change123-s3@2" in capsys.readouterr().out
    assert sorted(p.name for p in (bob / "change123-s3").iterdir()) == ["2.json"]
    assert cli.main(["algorithms", "pull", "change123-s3@1", "--from", REMOTE]) == 0
    for version in (1, 2):
        mine = (bob / "change123-s3" / f"{version}.json").read_bytes()
        assert mine == (alice / "change123-s3" / f"{version}.json").read_bytes()
    pulled = AlgorithmRegistry().get("change123-s3", 2)
    assert pulled.image_uri == f"registry.example/lab/change123-s3@{digest('b')}"
    assert pulled.spec.run_command.endswith("--v2")
    # bob's own next wrap follows the pulled versions.
    assert AlgorithmRegistry().next_version("change123-s3") == 3

    capsys.readouterr()
    assert cli.main(["algorithms", "pull", "change123-s3@1", "--from", REMOTE]) == 0
    assert "change123-s3@1 is here already, identical" in capsys.readouterr().out
    # bob publishing what he pulled changes nothing: the remote record is the same one.
    assert cli.main(["algorithms", "publish", "change123-s3@1", "--to", REMOTE]) == 0
    assert f"change123-s3@1 is already published at {REMOTE}/change123-s3/1.json, identical" in capsys.readouterr().out


def test_the_default_remote_and_pull_all(homes, capsys, monkeypatch):
    homes("alice")
    assert cli.main(["algorithms", "remote"]) == 0
    assert "no default remote" in capsys.readouterr().out
    assert cli.main(["algorithms", "remote", REMOTE + "/"]) == 0
    assert (Path(homes("alice")).parent / "config.yaml").read_text() == f"remote: {REMOTE}\n"
    assert cli.main(["algorithms", "remote"]) == 0
    assert f"default remote: {REMOTE} (from " in capsys.readouterr().out
    registry = AlgorithmRegistry()
    registry.record(spec(), "registry.example/lab/change123-s3:1", digest("a"))
    registry.record(spec("other"), "registry.example/lab/other:1", digest("c"))
    registry.record(spec("other"), "registry.example/lab/other:2", digest("d"))
    assert cli.main(["algorithms", "publish", "change123-s3", "other@1", "other@2"]) == 0
    # Another team's records under another prefix are not this registry's.
    s3().put_object(Bucket=BUCKET, Key="elsewhere/stranger/1.json", Body=b"{}")

    homes("bob")
    monkeypatch.setenv("YUNPIPE_REMOTE", REMOTE)
    assert cli.main(["algorithms", "pull", "--all"]) == 0
    bob = AlgorithmRegistry()
    assert bob.names() == ["change123-s3", "other"]
    assert bob.versions("other") == [1, 2]
    assert bob.get("other", 1).digest == digest("c")


def test_a_workflow_names_a_shared_algorithm(alice_published, homes, write_workflow, capsys):
    homes("bob")
    path = write_workflow(single_run(algorithm=f"{REMOTE}/change123-s3@1"))
    assert cli.setup_pipe_main(["-f", path]) == 0
    assert f"pulled change123-s3@1 from {REMOTE}" in capsys.readouterr().err
    assert AlgorithmRegistry().versions("change123-s3") == [1]
    # The step is named after the algorithm, and runs alice's image by digest.
    task = boto3.client("ecs", region_name=REGION).describe_task_definition(
        taskDefinition="yunpipe-demo-change123-s3-task")["taskDefinition"]
    assert task["containerDefinitions"][0]["image"] == f"registry.example/lab/change123-s3@{digest('a')}"


def test_a_workflow_name_missing_here_comes_from_the_default_remote(alice_published, homes, write_workflow,
                                                                    monkeypatch, capsys):
    homes("bob")
    monkeypatch.setenv("YUNPIPE_REMOTE", REMOTE)
    path = write_workflow(single_run(algorithm="change123-s3"))
    assert cli.setup_pipe_main(["-f", path, "--dry-run"]) == 0
    assert f"pulled change123-s3@2 from {REMOTE}" in capsys.readouterr().err
    # Known here now: the local record is used, without asking S3.
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path, "--dry-run"]) == 0
    # The one object read is the pipeline's accounting descriptor, which planning compares.
    assert [call for call in calls if call[0] == "s3" and "Object" in call[1]] == [("s3", "GetObject")]
    assert "pulled" not in capsys.readouterr().err


@pytest.mark.parametrize("name, message", [
    (f"{REMOTE}/change123-s3@7", f"expected a version of 'change123-s3' published at {REMOTE} (1, 2), got 7"),
    (f"{REMOTE}/nothing", f"expected an algorithm published at {REMOTE}, 'nothing' is not (published: change123-s3)"),
    ("s3://Team_Algorithms/change123-s3", "expected s3://BUCKET[/PREFIX] with a valid bucket name"),
    ("s3://change123-s3", "expected s3://BUCKET[/PREFIX]/NAME[@VERSION], got 's3://change123-s3'"),
    (f"{REMOTE}/change123-s3@latest", "expected NAME or NAME@VERSION"),
])
def test_a_shared_algorithm_that_is_not_there_stops_setup_pipe_before_any_change(alice_published, homes,
                                                                                 write_workflow, capsys, name,
                                                                                 message):
    homes("bob")
    path = write_workflow(single_run(algorithm=name))
    capsys.readouterr()
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 2
    assert f"error: {path}: process.algorithms[0].name: {message}" in capsys.readouterr().err
    assert not [call for call in calls if is_mutating(call[1])]


def test_unknown_names_and_versions_do_not_pull(alice_published, homes, capsys):
    homes("bob")
    capsys.readouterr()
    assert cli.main(["algorithms", "pull", "change123-s3@9", "--from", REMOTE]) == 2
    assert ("error: algorithms pull: change123-s3@9: expected a version of 'change123-s3' published at "
            f"{REMOTE} (1, 2), got 9") in capsys.readouterr().err
    assert cli.main(["algorithms", "pull", "nothing", "--from", REMOTE]) == 2
    assert (f"error: algorithms pull: nothing: expected an algorithm published at {REMOTE}, 'nothing' is not "
            "(published: change123-s3)") in capsys.readouterr().err
    assert cli.main(["algorithms", "pull", "change123-s3", "--from", f"s3://{BUCKET}/other-lab"]) == 2
    assert "(published: none)" in capsys.readouterr().err
    assert AlgorithmRegistry().names() == []


@pytest.mark.parametrize("url, message", [
    (f"{BUCKET}/lab", f"expected s3://BUCKET[/PREFIX], got '{BUCKET}/lab'"),
    ("s3://Team_Algorithms/lab", "expected s3://BUCKET[/PREFIX] with a valid bucket name (lower-case letters"),
    (f"s3://{BUCKET}/lab//x", "expected s3://BUCKET[/PREFIX] without empty folders ('//')"),
])
def test_a_bad_url_is_an_input_error(homes, capsys, url, message):
    homes("alice")
    AlgorithmRegistry().record(spec(), "registry.example/lab/change123-s3:1", digest("a"))
    capsys.readouterr()
    assert cli.main(["algorithms", "publish", "change123-s3", "--to", url]) == 2
    assert f"error: algorithms publish: --to: {message}" in capsys.readouterr().err
    assert cli.main(["algorithms", "pull", "change123-s3", "--from", url]) == 2
    assert f"error: algorithms pull: --from: {message}" in capsys.readouterr().err
    assert cli.main(["algorithms", "remote", url]) == 2
    assert f"error: algorithms remote: URL: {message}" in capsys.readouterr().err
    with pytest.raises(InputError):
        parse_remote(url, "x", "y")
    assert "Contents" not in s3().list_objects_v2(Bucket=BUCKET)


def test_a_missing_bucket_or_remote_is_an_input_error(homes, capsys, monkeypatch):
    homes("alice")
    AlgorithmRegistry().record(spec(), "registry.example/lab/change123-s3:1", digest("a"))
    capsys.readouterr()
    assert cli.main(["algorithms", "publish", "change123-s3", "--to", "s3://no-such-bucket/lab"]) == 2
    assert ("error: s3://no-such-bucket/lab: BUCKET: expected an existing bucket, 'no-such-bucket' does not exist"
            in capsys.readouterr().err)
    assert cli.main(["algorithms", "pull", "change123-s3"]) == 2
    assert ("error: algorithms pull: --from: expected s3://BUCKET[/PREFIX], or a default remote "
            "(`yunpipe algorithms remote s3://BUCKET[/PREFIX]`, or YUNPIPE_REMOTE)") in capsys.readouterr().err
    monkeypatch.setenv("YUNPIPE_REMOTE", "https://example.com/lab")
    assert cli.main(["algorithms", "publish", "change123-s3"]) == 2
    assert "error: YUNPIPE_REMOTE: expected s3://BUCKET[/PREFIX], got 'https://example.com/lab'" in capsys.readouterr().err


def test_a_version_whose_image_is_not_pinned_is_not_published(homes, capsys):
    homes("alice")
    AlgorithmRegistry().record(spec(), "yunpipe-local/change123-s3:1")
    capsys.readouterr()
    assert cli.main(["algorithms", "publish", "change123-s3", "--to", REMOTE]) == 2
    error = capsys.readouterr().err
    assert "error: algorithms publish: change123-s3@1: expected a version whose image was pushed to a registry" in error
    assert "yunpipe-local/change123-s3:1 exists only in the Docker of the machine that wrapped it" in error
    assert "Contents" not in s3().list_objects_v2(Bucket=BUCKET)


def test_a_published_version_never_changes(alice_published, homes, capsys):
    before = remote_document("lab/change123-s3/1.json")
    homes("bob")
    AlgorithmRegistry().record(spec(command="bob.py $input $output"), "registry.example/bob/change123-s3:1", digest("e"))
    capsys.readouterr()
    assert cli.main(["algorithms", "publish", "change123-s3@1", "--to", REMOTE]) == 1
    assert (f"error: change123-s3@1 is already published at {REMOTE} with other content (image "
            f"registry.example/lab/change123-s3@{digest('a')}, recorded ") in capsys.readouterr().err
    assert remote_document("lab/change123-s3/1.json") == before
    # Nor does a pull overwrite bob's own version 1.
    mine = (homes("bob") / "change123-s3" / "1.json").read_text()
    assert cli.main(["algorithms", "pull", "change123-s3@1", "--from", REMOTE]) == 1
    assert "change123-s3@1 is already recorded here" in capsys.readouterr().err
    assert (homes("bob") / "change123-s3" / "1.json").read_text() == mine


def test_concurrent_publishers_of_one_version_one_wins_the_other_fails_cleanly(homes, tmp_path):
    """alice and bob each wrapped their own change123-s3@1..5 and publish them at the same moment,
    version by version: S3's conditional write lets exactly one create each version."""
    registries = {who: AlgorithmRegistry(tmp_path / who / "algorithms") for who in ("alice", "bob")}
    for who, registry in registries.items():
        for version in range(1, 6):
            registry.record(spec(command=f"{who}.py $input $output"), f"registry.example/{who}/change123-s3:{version}",
                            digest("a" if who == "alice" else "b"))
    location = parse_remote(REMOTE, "test", "remote")

    def publish(who: str, version: int, start: threading.Barrier, outcome: dict[str, object]) -> None:
        remote = RemoteRegistry(open_aws(AwsOptions()), location)
        record = registries[who].get("change123-s3", version)
        start.wait()
        try:
            outcome[who] = remote.publish(record)
        except YunpipeError as error:
            outcome[who] = error

    for version in range(1, 6):
        start = threading.Barrier(2)
        outcome: dict[str, object] = {}
        threads = [threading.Thread(target=publish, args=(who, version, start, outcome)) for who in registries]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [who for who, result in outcome.items() if result is True]
        assert len(winners) == 1, outcome
        (loser,) = set(registries) - set(winners)
        assert isinstance(outcome[loser], YunpipeError)
        assert "with other content" in str(outcome[loser]) and "published versions never change" in str(outcome[loser])
        winner_record = registries[winners[0]].get("change123-s3", version)
        assert remote_document(f"lab/change123-s3/{version}.json") == winner_record.to_document()


def test_a_pulled_record_must_match_its_key(homes, capsys):
    homes("alice")
    record = AlgorithmRegistry().record(spec(), "registry.example/lab/change123-s3:1", digest("a"))
    s3().put_object(Bucket=BUCKET, Key="lab/change123-s3/3.json", Body=json.dumps(record.to_document()).encode())
    s3().put_object(Bucket=BUCKET, Key="lab/change123-s3/4.json", Body=b"not json")
    imageless = {key: value for key, value in record.to_document().items() if key != "image"}
    s3().put_object(Bucket=BUCKET, Key="lab/change123-s3/5.json", Body=json.dumps(imageless).encode())
    homes("bob")
    capsys.readouterr()
    assert cli.main(["algorithms", "pull", "change123-s3@3", "--from", REMOTE]) == 2
    assert (f"error: s3://{BUCKET}/lab/change123-s3/3.json: name, version: expected change123-s3@3 as its key says, "
            "got change123-s3@1") in capsys.readouterr().err
    assert cli.main(["algorithms", "pull", "change123-s3@4", "--from", REMOTE]) == 2
    assert f"error: s3://{BUCKET}/lab/change123-s3/4.json: line 1, column 1: expected valid JSON" in capsys.readouterr().err
    assert cli.main(["algorithms", "pull", "change123-s3", "--from", REMOTE]) == 2
    assert f"error: s3://{BUCKET}/lab/change123-s3/5.json: image: expected an image reference" in capsys.readouterr().err
    assert AlgorithmRegistry().names() == []
