"""The size of a step's task: Fargate's fixed cpu/memory pairs, and how many jobs a task runs at once."""

# Fargate's valid (cpu units, memory MiB) combinations.
FARGATE_SIZES = (
    (256, (512, 1024, 2048)),
    (512, tuple(range(1024, 4097, 1024))),
    (1024, tuple(range(2048, 8193, 1024))),
    (2048, tuple(range(4096, 16385, 1024))),
    (4096, tuple(range(8192, 30721, 1024))),
    (8192, tuple(range(16384, 61441, 4096))),
    (16384, tuple(range(32768, 122881, 8192))),
)



def fargate_size(vcpu: float, memory_mib: int) -> tuple[int, int] | None:
    """The smallest valid Fargate (cpu units, memory MiB) covering the request, or None."""
    for cpu, memories in FARGATE_SIZES:
        if cpu < vcpu * 1024:
            continue
        for memory in memories:
            if memory >= memory_mib:
                return cpu, memory
    return None


# Jobs one task runs at once when its memory holds more than one; more would split a
# compute-heavy command's CPU too thinly.
MAX_DEFAULT_PARALLELISM = 4


def default_parallelism(cpu_units: int, task_memory: int, job_memory: int) -> int:
    """Jobs at once in a task of this size: one per vCPU, and as many as the task's memory holds
    at the step's memory (up to 4), whichever is more. A job mostly waits on S3 and SQS, so
    several overlap even on a fraction of a vCPU (bench/README.md: one 0.25 vCPU task running
    4 of the 128 MiB jobs did more than two running one each); memory is what they cannot
    share. Fargate's smallest sizes leave room: 0.25 vCPU comes with at least 512 MiB."""
    by_memory = min(MAX_DEFAULT_PARALLELISM, task_memory // max(1, job_memory))
    return max(1, cpu_units // 1024, by_memory)

