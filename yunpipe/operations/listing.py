"""The pipelines set up from this machine (`yunpipe pipelines`), read from their state files
(no AWS call): name, region, where each runs, its steps, input -> output bucket."""
from dataclasses import dataclass

from yunpipe.aws.location import describe, local_cloud_gone
from yunpipe.engine.state import PipelineState, known_pipelines
from yunpipe.errors import YunpipeError


@dataclass(frozen=True)
class ListedPipeline:
    """One state file. `problem` says why there is no summary (setup-pipe has not recorded one
    yet, or the file does not load); the other fields are then None."""
    name: str
    region: str | None = None
    account_id: str | None = None
    where: str | None = None
    location: dict | None = None
    steps: tuple[str, ...] = ()
    input_bucket: str | None = None
    output_bucket: str | None = None
    problem: str | None = None


def place(location: dict | None, account_id: str) -> str:
    if location is None:
        return f"account {account_id}, place not recorded (reached with the command's flags)"
    if location["cloud"] == "local":
        if local_cloud_gone(location):
            return "a local cloud that has stopped since: gone with it (set it up again, or clean-up to forget it)"
        return f"the local cloud (last at {location.get('endpoint_url')})"
    return describe(location)


def listed(name: str) -> ListedPipeline:
    try:
        summary = PipelineState.load(name).summary
    except YunpipeError as error:
        # One unreadable file must not hide the others.
        return ListedPipeline(name, problem=f"unreadable state: {error}")
    if summary is None:
        return ListedPipeline(name, problem=f"no summary yet: setup-pipe did not finish (run it again, or clean-up {name})")
    return ListedPipeline(name, summary.region, summary.account_id, place(summary.location, summary.account_id),
                          summary.location, tuple(step.name for step in summary.steps), summary.input_bucket,
                          summary.output_bucket)


def list_pipelines() -> list[ListedPipeline]:
    return [listed(name) for name in known_pipelines()]


def on_the_running_local_cloud() -> list[ListedPipeline]:
    """The pipelines the running local cloud holds (what stopping it throws away)."""
    return [p for p in list_pipelines() if p.location and p.location["cloud"] == "local" and
            not local_cloud_gone(p.location)]
