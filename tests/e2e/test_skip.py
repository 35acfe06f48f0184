"""End to end: what is done is not paid for twice (issue 24). A file is uploaded and gets its
result; the identical file uploaded again is skipped by the worker (its job record says so, and
the result is not written again); `yunpipe submit --force` runs it again. One pipeline, one small
file, three jobs: about 30 s on top of the suite's fixtures.
"""

import pytest
from helpers import job_records

from .helpers import run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e


def outcomes(s3, bucket: str, pipeline: str, key: str) -> list[str]:
    """The outcomes of the final job records of `key` in every run of the pipeline."""
    return [record["outcome"] for end, record in job_records(s3, bucket, f"runs/{pipeline}/").items()
            if "/ends/" in end and record["key"] == key]


def test_an_identical_upload_is_skipped_and_submit_force_runs_it_again(pipeline, aws, tmp_path):
    tester = pipeline([{"name": "tester", "max_receive_count": 1}], idle_seconds=1)
    inputs = write_inputs(tmp_path / "in", {"a.txt": "the same bytes\n"})
    s3, reports = aws("s3"), tester.summary.reports_bucket
    run_ok("upload", "--local", tester.name, str(inputs))
    tester.wait_for_results({"a.txt": b"the same bytes\n-- tested\n"}, timeout=90)
    wait_until(lambda: None if "ok" in outcomes(s3, reports, tester.name, "a.txt") else "no ok record yet",
               timeout=30, explain=tester.diagnosis)
    first = s3.head_object(Bucket=tester.output_bucket, Key="a.txt")

    # The same bytes again: a new object (a new S3 event) with the same ETag.
    run_ok("upload", "--local", tester.name, str(inputs))
    wait_until(lambda: None if "skipped" in outcomes(s3, reports, tester.name, "a.txt") else "no skipped record yet",
               timeout=90, explain=tester.diagnosis)
    again = s3.head_object(Bucket=tester.output_bucket, Key="a.txt")
    assert (again["LastModified"], again["ETag"], again["Metadata"]) == (
        first["LastModified"], first["ETag"], first["Metadata"])

    run_ok("submit", "--local", tester.name, "--force")

    def rewritten():
        modified = s3.head_object(Bucket=tester.output_bucket, Key="a.txt")["LastModified"]
        return None if modified > first["LastModified"] else "the forced job has not written its result yet"
    wait_until(rewritten, timeout=90, explain=tester.diagnosis)
    assert s3.get_object(Bucket=tester.output_bucket, Key="a.txt")["Body"].read() == b"the same bytes\n-- tested\n"
