"""yunpipe's ECS data plane for the local cloud: every RUNNING task becomes Docker containers.

moto keeps ECS tasks as records only. The runner polls the emulator (all clusters of the given
regions) and, for each task it has not seen yet, runs one Docker container per container
definition through the Docker SDK:

- image, command, entryPoint, workingDirectory from the container definition; environment from
  the definition, then the task's containerOverrides; secrets resolved from SSM (``valueFrom``
  a name or ARN, decrypted) or Secrets Manager (an ARN, with ECS's JSON-key suffix), as ECS does; cpu units/1024 -> ``nano_cpus``, memory MiB -> ``mem_limit`` (container values,
  overrides, else the task-level ones); GPU resource requirements -> a device request when Docker
  has the nvidia runtime, else the container runs without GPUs (with a warning);
- ``network_mode="host"`` and ``AWS_ENDPOINT_URL=http://127.0.0.1:<port>``, the task's region and
  fake credentials (the emulator listens on loopback only);
- labels ``yunpipe.local=<pid of the process whose local cloud runs it>``, ``yunpipe.task-arn``,
  ``yunpipe.cluster``.

Output of a container whose logConfiguration is ``awslogs`` is copied into CloudWatch Logs
(group and region from its options, stream ``<awslogs-stream-prefix>/<container>/<task id>``).
When an essential container exits, the others are killed and the task is stopped with
``"Essential container exited with code N"``; a task that cannot start (missing image, missing
log group, unreadable secret) is stopped with the error as its reason. A task stopped through
the API is STOPPING while its containers get SIGTERM and, after their ``stopTimeout`` (default
30 s), SIGKILL, as on ECS; it is STOPPED once they have exited (stop_task_deferred). Containers
are removed once their task is over.

API:
    EcsRunner(endpoint_url, regions, docker_client, poll_interval=0.5)
        .start(), .stop()          stop() kills the containers of the tasks still running
        .active_tasks() -> list[str]
        .interrupt_like_spot(arn)  stop a task as a Fargate Spot interruption does
        .client(service, region)   the runner's botocore client, shared by its threads
    remove_local_containers(docker_client, owner=None) -> int
                                 kill and remove the containers of one local cloud (owner: its
                                 process id), or with no owner those whose local cloud is gone
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from typing import Any

import docker
import docker.errors
import docker.types
from botocore.exceptions import ClientError

from yunpipe.aws.announcement import process_alive
from yunpipe.aws.location import LOCAL_ENVIRONMENT
from yunpipe.specs.secrets import SECRET_ARN

from .clients import local_client
from .log_pump import LogPump
from .moto_patches import run_task_observed, stop_like_spot, stop_task_deferred
from .polling import PollingThread
from .task_metadata import TaskMetadata

log = logging.getLogger(__name__)

LABEL = "yunpipe.local"
LABEL_TASK = "yunpipe.task-arn"
LABEL_CLUSTER = "yunpipe.cluster"
LOOPBACK_REGISTRIES = ("127.0.0.1", "localhost")
# ECS's stop timeout when a container definition sets none: SIGTERM, then SIGKILL this much later.
STOP_TIMEOUT_SECONDS = 30

# The runners of this process, woken by every RunTask moto accepts: a new task then starts at
# once instead of at the next poll (a quarter of a second on average at the default interval).
# The hooks (yunpipe.local.moto_patches.run_task_observed, and stop_task_deferred for the tasks
# whose containers they run) are entered when the first runner starts and left when the last
# one stops.
_awake: set[EcsRunner] = set()
_awake_lock = threading.Lock()
_hook = contextlib.ExitStack()


def _wake_all() -> None:
    with _awake_lock:
        runners = list(_awake)
    for each in runners:
        each.wake()


def _containers_run(arn: str) -> bool:
    with _awake_lock:
        runners = list(_awake)
    return any(each.holds(arn) for each in runners)


def _wake_on_run_task(runner: EcsRunner) -> None:
    with _awake_lock:
        if not _awake:
            _hook.enter_context(run_task_observed(_wake_all))
            _hook.enter_context(stop_task_deferred(_containers_run))
        _awake.add(runner)


def _stop_waking(runner: EcsRunner) -> None:
    with _awake_lock:
        if runner in _awake:
            _awake.discard(runner)
            if not _awake:
                _hook.close()


class TaskStartError(Exception):
    """A task cannot start; its message becomes the task's stoppedReason."""


def owner_id() -> str:
    """Who owns the containers of this process's local cloud (one local cloud per process)."""
    return str(os.getpid())


def remove_local_containers(docker_client: docker.DockerClient, owner: str | None = None) -> int:
    """Only one local cloud's containers, or those left by dead ones: several local clouds (a
    user's, a test run's, a benchmark's) may share one Docker daemon."""
    # ignore_removed: another local cloud may be removing its containers at the same moment.
    containers = docker_client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True)
    if owner is None:
        doomed = [c for c in containers if not process_alive(int(c.labels.get(LABEL, "0") or 0))]
    else:
        doomed = [c for c in containers if c.labels.get(LABEL) == owner]
    for container in doomed:
        # APIError: gone already, or its removal is under way
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    return len(doomed)


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    items: list[Any] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page.get(key, []))
    return items


def _docker_name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text)


class _TaskRun(threading.Thread):
    """Runs one ECS task's containers from creation to removal."""

    def __init__(self, runner: EcsRunner, task: dict, region: str):
        super().__init__(name=f"yunpipe-task-{task['taskArn'].rsplit('/', 1)[-1]}", daemon=True)
        self.task = task
        self.arn = task["taskArn"]
        self.task_id = self.arn.rsplit("/", 1)[-1]
        self.cluster = task["clusterArn"]
        self.region = region
        self._runner = runner
        self._ecs = runner.client("ecs", region)
        self._stopped_elsewhere = threading.Event()
        self._graceful = True
        # Until its containers have exited: a StopTask then leaves the task STOPPING.
        self.holding = True
        self._containers: list[tuple[dict, Any]] = []
        self._pumps: list[LogPump] = []

    def stop_from_api(self, graceful: bool = True) -> None:
        """The task was stopped through the API: its containers go (gracefully: SIGTERM first),
        its reason stays."""
        self._graceful = graceful
        self._stopped_elsewhere.set()

    def run(self) -> None:
        reason = None
        try:
            self._create_containers()
            for _, container in self._containers:
                container.start()
            for pump in self._pumps:
                pump.start()
            reason = self._wait()
        except (TaskStartError, docker.errors.APIError) as exc:
            reason = f"CannotStartContainerError: {exc}"
        except Exception as exc:
            log.exception("task %s failed in the local runner", self.arn)
            reason = f"yunpipe local runner error: {exc}"
        finally:
            graceful = self._stopped_elsewhere.is_set() and self._graceful
            for definition, container in self._containers:
                with contextlib.suppress(docker.errors.APIError):  # already exited
                    if graceful:
                        container.stop(timeout=definition.get("stopTimeout") or STOP_TIMEOUT_SECONDS)
                    else:
                        container.kill()
            for pump in self._pumps:
                if pump.ident is not None:
                    pump.join(timeout=30)
            self._runner.metadata.forget(self.arn)
            self.holding = False
            if graceful:
                # Completes the API's stop: STOPPED now, with the API's reason.
                self._stop_task("")
            elif not self._stopped_elsewhere.is_set() and reason is not None:
                self._stop_task(reason)
            for _, container in self._containers:
                # APIError: gone already, or its removal is under way
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
            self._runner._finished(self.arn)

    def _stop_task(self, reason: str) -> None:
        try:
            self._ecs.stop_task(cluster=self.cluster, task=self.arn, reason=reason[:1024])
        except ClientError as exc:
            log.warning("cannot stop task %s: %s", self.arn, exc)

    def _wait(self) -> str | None:
        while True:
            if self._stopped_elsewhere.wait(self._runner.poll_interval):
                return None
            for definition, container in self._containers:
                container.reload()
                if container.status in ("exited", "dead") and definition.get("essential", True):
                    code = container.attrs["State"]["ExitCode"]
                    return f"Essential container exited with code {code}"

    def _create_containers(self) -> None:
        task_definition = self._ecs.describe_task_definition(taskDefinition=self.task["taskDefinitionArn"])[
            "taskDefinition"
        ]
        overrides = {o["name"]: o for o in self.task.get("overrides", {}).get("containerOverrides", []) if "name" in o}
        for definition in task_definition["containerDefinitions"]:
            kwargs = self._container_kwargs(task_definition, definition, overrides.get(definition["name"], {}))
            self._ensure_image(kwargs["image"])
            pump_target = self._log_target(definition)
            container = self._runner.docker.containers.create(**kwargs)
            self._containers.append((definition, container))
            if pump_target:
                logs = self._runner.client("logs", pump_target[0])
                self._pumps.append(LogPump(container, logs, *pump_target[1:]))

    def _container_kwargs(self, task_definition: dict, definition: dict, override: dict) -> dict:
        environment = {e["name"]: e["value"] for e in definition.get("environment", [])}
        environment.update({e["name"]: e["value"] for e in override.get("environment", [])})
        for secret in definition.get("secrets", []):
            environment[secret["name"]] = self._secret(secret["valueFrom"])
        # The local cloud's own settings win: a task must never reach past the emulator.
        environment.update(LOCAL_ENVIRONMENT)
        environment.update(
            {
                "AWS_ENDPOINT_URL": self._runner.endpoint_url,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "ECS_CONTAINER_METADATA_URI_V4": self._runner.metadata.register(self.task),
            }
        )
        cpu = override.get("cpu") or definition.get("cpu") or int(task_definition.get("cpu") or 0)
        memory = override.get("memory") or definition.get("memory") or int(task_definition.get("memory") or 0)
        reservation = override.get("memoryReservation") or definition.get("memoryReservation")
        kwargs: dict[str, Any] = {
            "image": definition["image"],
            "name": _docker_name(f"yunpipe-{self.cluster.rsplit('/', 1)[-1]}-{self.task_id}-{definition['name']}"),
            "environment": environment,
            "network_mode": "host",
            "labels": {LABEL: owner_id(), LABEL_TASK: self.arn, LABEL_CLUSTER: self.cluster},
            "detach": True,
        }
        command = override.get("command") or definition.get("command")
        if command:
            kwargs["command"] = command
        if definition.get("entryPoint"):
            kwargs["entrypoint"] = definition["entryPoint"]
        if definition.get("workingDirectory"):
            kwargs["working_dir"] = definition["workingDirectory"]
        if definition.get("user"):
            kwargs["user"] = definition["user"]
        if cpu:
            kwargs["nano_cpus"] = int(cpu) * 10**9 // 1024
        if memory:
            kwargs["mem_limit"] = f"{int(memory)}m"
        if reservation:
            kwargs["mem_reservation"] = f"{int(reservation)}m"
        gpus = sum(int(r["value"]) for r in definition.get("resourceRequirements", []) if r.get("type") == "GPU")
        if gpus and self._runner.has_gpus():
            kwargs["device_requests"] = [docker.types.DeviceRequest(count=gpus, capabilities=[["gpu"]])]
        elif gpus:
            log.warning("task %s asks for %d GPU(s), but this Docker has no nvidia runtime: it runs without",
                        self.task_id, gpus)
        return kwargs

    def _secret(self, value_from: str) -> str:
        """A secret's value, read as ECS reads it: an SSM parameter (name, or ARN of any region),
        decrypted; or a Secrets Manager secret by ARN, with ECS's optional
        `:json-key:version-stage:version-id` suffix picking one key of a JSON secret."""
        secret = SECRET_ARN.match(value_from)
        try:
            if not secret:
                region = value_from.split(":")[3] if value_from.startswith("arn:") else self.region
                ssm = self._runner.client("ssm", region)
                return ssm.get_parameter(Name=value_from, WithDecryption=True)["Parameter"]["Value"]
            key, stage, version = (secret["key"] or ":::")[1:].split(":")
            found = self._runner.client("secretsmanager", secret["arn"].split(":")[3]).get_secret_value(
                SecretId=secret["arn"], **({"VersionStage": stage} if stage else {}),
                **({"VersionId": version} if version else {}))
            text = found.get("SecretString")
            if text is None:
                raise TaskStartError(f"cannot read secret {value_from}: it holds binary data, not a string")
            if not key:
                return text
            try:
                return str(json.loads(text)[key])
            except (ValueError, KeyError, TypeError):
                raise TaskStartError(f"cannot read secret {value_from}: no JSON key {key!r} in it") from None
        except ClientError as exc:
            raise TaskStartError(f"cannot read secret {value_from}: {exc}") from exc

    def _ensure_image(self, image: str) -> None:
        try:
            self._runner.docker.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        # Only a registry on this machine is worth asking: the others are unreachable offline.
        if image.split("/", 1)[0].split(":", 1)[0] in LOOPBACK_REGISTRIES and "/" in image:
            try:
                self._runner.docker.images.pull(image)
                return
            except docker.errors.APIError as exc:
                raise TaskStartError(f"cannot pull image {image}: {exc}") from exc
        raise TaskStartError(f"image {image} is not in the local Docker daemon")

    def _log_target(self, definition: dict) -> tuple[str, str, str] | None:
        config = definition.get("logConfiguration") or {}
        if config.get("logDriver") != "awslogs":
            return None
        options = config.get("options", {})
        group = options.get("awslogs-group")
        if not group:
            raise TaskStartError(f"container {definition['name']}: awslogs needs awslogs-group")
        region = options.get("awslogs-region", self.region)
        prefix = options.get("awslogs-stream-prefix")
        stream = f"{prefix}/{definition['name']}/{self.task_id}" if prefix else f"{definition['name']}/{self.task_id}"
        logs = self._runner.client("logs", region)
        if options.get("awslogs-create-group") == "true":
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=group)
        try:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        except logs.exceptions.ResourceNotFoundException as exc:
            # As on AWS: a missing group fails the task instead of losing its output.
            raise TaskStartError(f"log group {group} does not exist: {exc}") from exc
        return region, group, stream


class EcsRunner(PollingThread):
    """Polls the emulator for RUNNING tasks and runs each in Docker (see the module docstring)."""

    thread_name = "yunpipe-ecs-runner"

    def __init__(self, endpoint_url: str, regions: list[str], docker_client: docker.DockerClient, poll_interval: float = 0.5):
        super().__init__(poll_interval)
        self.endpoint_url = endpoint_url
        self.regions = list(regions)
        self.docker = docker_client
        self._runs: dict[str, _TaskRun] = {}
        # Tasks already run once are never run again, even if stopping them failed.
        self._done: set[str] = set()
        self._lock = threading.Lock()
        # (service, region) -> client. Building one costs ~50 ms of this process's CPU, which a
        # burst of task starts paid four times per task; botocore clients are thread-safe.
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._gpus: bool | None = None  # asked of Docker when a task first wants GPUs
        self.metadata = TaskMetadata()

    def start(self) -> None:
        self.metadata.start()
        _wake_on_run_task(self)
        super().start()

    def stop(self) -> None:
        _stop_waking(self)
        super().stop()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            # Shutting down is not a task outcome: the tasks stay as they are in the
            # emulator, which stops right after.
            run.stop_from_api(graceful=False)
        for run in runs:
            run.join(timeout=60)
        self.metadata.stop()

    def has_gpus(self) -> bool:
        """Whether Docker can hand GPUs to containers (the NVIDIA container runtime is installed)."""
        if self._gpus is None:
            self._gpus = "nvidia" in (self.docker.info().get("Runtimes") or {})
        return self._gpus

    def client(self, service: str, region: str) -> Any:
        with self._clients_lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = local_client(service, self.endpoint_url, region)
            return self._clients[(service, region)]

    def holds(self, arn: str) -> bool:
        """Whether this runner has containers of the task that have not exited yet."""
        with self._lock:
            run = self._runs.get(arn)
        return run is not None and run.holding

    def interrupt_like_spot(self, task_arn: str) -> None:
        """Stop one of this runner's tasks as a Fargate Spot interruption does: at once its stop
        code SpotInterruption and ECS's reason (DescribeTasks), then SIGTERM to its containers
        and SIGKILL after their stop timeout. ValueError when this runner runs no such task."""
        if not self.holds(task_arn) or not stop_like_spot(task_arn):
            raise ValueError(f"the local cloud runs no task {task_arn}")
        # The next poll finds the task no longer running and stops its containers gracefully.
        self.wake()

    def active_tasks(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    def _finished(self, arn: str) -> None:
        with self._lock:
            self._runs.pop(arn, None)
            self._done.add(arn)

    def poll_once(self) -> None:
        for region in self.regions:
            try:
                self._poll(region)
            except Exception:
                log.exception("ECS poll failed in %s", region)

    def _poll(self, region: str) -> None:
        ecs = self.client("ecs", region)
        for cluster in _paginate(ecs, "list_clusters", "clusterArns"):
            running = set(_paginate(ecs, "list_tasks", "taskArns", cluster=cluster, desiredStatus="RUNNING"))
            with self._lock:
                mine = {arn: run for arn, run in self._runs.items() if run.cluster == cluster}
            for arn, run in mine.items():
                if arn not in running:
                    run.stop_from_api()
            with self._lock:
                new = sorted(running - set(mine) - self._done)
            for start in range(0, len(new), 100):
                described = ecs.describe_tasks(cluster=cluster, tasks=new[start : start + 100])["tasks"]
                for task in described:
                    if task.get("lastStatus") in ("PENDING", "RUNNING"):
                        self._launch(task, region)

    def _launch(self, task: dict, region: str) -> None:
        run = _TaskRun(self, task, region)
        with self._lock:
            if self._stop.is_set() or task["taskArn"] in self._runs:
                return
            self._runs[task["taskArn"]] = run
        run.start()
