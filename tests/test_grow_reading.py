"""What a user reads of jobs out of memory (the sizes come from real runs in tests/e2e/test_grow.py):
status's report lines and files waiting at larger sizes, and a run report's step line."""
from types import SimpleNamespace

from yunpipe.operations import report, status

SUMMARY = SimpleNamespace(pipeline="demo", region="us-east-1", input_bucket="in", output_bucket="out")


def oom(attempt, memory, retry, final=False):
    return {"key": "big.txt", "attempt": attempt, "final": final, "reason": "oom", "exit_code": -9,
            "memory_mib": memory, "retry_memory_mib": retry, "finished_at": "2026-12-07T12:00:00Z"}


def test_status_says_at_which_size_a_job_ran_out_of_memory_and_where_it_went_on():
    step = status.StepStatus("tester", 0, 0, 1, 1, failures=(
        oom(3, 2048, None, final=True), oom(1, 512, 1024),
        {"key": "bad.txt", "attempt": 1, "final": False, "reason": "nonzero_exit", "exit_code": 3, "memory_mib": 512,
         "retry_memory_mib": None, "finished_at": "2026-12-07T12:00:00Z"}), done=4, growing=2)
    lines = status.render(SUMMARY, status.PipelineStatus((step,))).splitlines()
    assert lines[1] == ("step tester: 4 of 7 done, 0 waiting, 0 in flight, 1 in the dead-letter queue, "
                        "1 task(s) running")
    assert lines[2] == "  2 file(s) out of memory waiting or running at a larger memory"
    assert lines[3] == ("  failed big.txt attempt 3 (final try): oom exit -9 at 2048 MiB, the largest size "
                        "2026-12-07T12:00:00Z")
    assert lines[4] == "  failed big.txt attempt 1: oom exit -9 at 512 MiB, tried again at 1024 MiB 2026-12-07T12:00:00Z"
    assert lines[5] == "  failed bad.txt attempt 1: nonzero_exit exit 3 2026-12-07T12:00:00Z"


def test_a_run_report_says_how_many_jobs_ran_again_at_a_larger_memory():
    stats = {"ok": 5, "oom": 1, "wall_seconds": {"p50": 1, "p95": 2, "max": 3},
             "peak_memory_mib": {"p50": 20, "max": 900}, "memory_limit_mib": 2048,
             "grown": {"jobs": 2, "max_memory_mib": 2048}}
    assert report.step_line("tester", stats).endswith("; 2 out of memory, run again at up to 2048 MiB")
    assert "out of memory" not in report.step_line("tester", {**stats, "grown": None})
