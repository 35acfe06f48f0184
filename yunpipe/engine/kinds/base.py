"""What every resource kind implements, and what the planner and the sweeper hand to a kind.

A kind is one class in a module of its own under yunpipe/engine/kinds/, next to the frozen
dataclass of its resources. Its `plan` reads what exists and returns the calls that make it
as desired; its `sweep` reads and returns the calls that delete one (by key); its
`arn_pattern` and `discover` find the pipeline's resources by tag without the state file.
New capabilities of a kind (a CloudFormation rendering, a check of the account before a
deploy) are further methods here, with a default, so kinds gain them one by one.
"""
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from yunpipe.aws.reader import NO_QUEUE, NOT_FOUND, Reader
from yunpipe.engine.plan import Call
from yunpipe.engine.target import Target
from yunpipe.engine.template import Template
from yunpipe.errors import InputError

# The tag on everything yunpipe creates: its value is the pipeline's name.
TAG_KEY = "yunpipe:pipeline"
# On each step's own resources (its queues, roles, launcher, task definition and so its tasks): the step's name.
STEP_TAG_KEY = "yunpipe:step"
ROLE_PATH = "/yunpipe/"
# Error codes of a delete whose resource is already gone: the work is done.
GONE_CODES = NOT_FOUND + NO_QUEUE + ("NoSuchEntity", "ParameterNotFound", "NoSuchBucket")

ResourceKey = tuple[str, str]  # (kind, key), as plans and the pipeline's state name a resource


class Named:
    """A resource whose name is its key in plans and in the pipeline's state."""

    name: str

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class QueueUrl:
    """Stands for the URL of the queue named `queue`, known only once the queue exists."""

    queue: str


@dataclass
class PlanContext:
    """What one plan shares between its kinds: where it goes, what yunpipe owns, and what
    earlier kinds of the same plan learnt (queue URLs, notes, Lambda executions left)."""

    reader: Reader
    pipeline: str
    target: Target
    source: str  # the workflow file, for errors found while planning
    # What the state says yunpipe created: only those buckets are checked for settings.
    owned: AbstractSet[ResourceKey] = frozenset()
    # Each queue's URL, or a Ref to it when this plan creates the queue.
    queue_urls: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The account's unreserved Lambda executions, less what this plan reserves; None when
    # unknown (emulators without GetAccountSettings have no limit to respect).
    unreserved: int | None = None
    unreserved_read: bool = False

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass(frozen=True)
class SweepContext:
    reader: Reader
    purge: bool = False  # whether buckets (and every object in them) go too
    # Everything this sweep deletes: a kind whose deletion another one's implies plans none.
    deleting: AbstractSet[ResourceKey] = frozenset()


R = TypeVar("R")


class Kind(ABC, Generic[R]):
    """One kind of resource: how it is planned and swept. `R` is its dataclass."""

    name: ClassVar[str]  # as resources, calls and the state name the kind (R.kind)
    # The ARN of its resources in the tagging API's answers, with the key as group "key";
    # None for kinds the tagging API does not list (they may `discover` themselves).
    arn_pattern: ClassVar[re.Pattern[str] | None] = None
    # Kept by a clean-up unless it purges (buckets hold the user's data).
    kept_unless_purged: ClassVar[bool] = False

    def check(self, resource: R, ctx: PlanContext) -> list[InputError]:
        """Reads only: what in the account would make AWS refuse `resource` although the workflow
        is well formed (a bucket of another region, a notification S3 finds ambiguous). The
        planner refuses the first before any change; `yunpipe doctor` shows them all."""
        return []

    @abstractmethod
    def plan(self, resource: R, ctx: PlanContext) -> list[Call]:
        """Reads only: the calls that make `resource` exist as desired (none when it does)."""

    @abstractmethod
    def sweep(self, key: str, ctx: SweepContext) -> list[Call]:
        """Reads only: the calls that delete the resource `key` (none when it is gone)."""

    def discover(self, reader: Reader, pipeline: str, found: AbstractSet[ResourceKey]) -> set[ResourceKey]:
        """The pipeline's resources of this kind that the tagging API does not list, given
        those found so far (kinds discover in creation order)."""
        return set()

    def cloudformation(self, resource: R, template: Template) -> dict[str, dict] | None:
        """The resource in a CloudFormation template: logical id -> resource (a fragment of a
        resource already there, such as a bucket's notification, is merged into it); {} when the
        template cannot hold it (its notes say what to do instead); None when the kind has no
        rendering yet, which the template's description then names."""
        return None


def call(resource: Any, action: str, service: str, operation: str, message: str, **params: Any) -> Call:
    """A call that creates or updates `resource` (recorded in the state once done)."""
    return Call(service, operation, params, message, resource.kind, resource.key, action)


def delete(kind: str, key: str, service: str, operation: str, message: str, last: bool = True,
           **params: Any) -> Call:
    """A call deleting (part of) a resource; the last one forgets it in the state."""
    return Call(service, operation, params, message, kind, key, "delete", "remove" if last else "",
                done_codes=GONE_CODES)


def tag_list(tags: Mapping[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in tags.items()]


def missing_tags(current: Mapping[str, str], desired: Mapping[str, str]) -> dict[str, str]:
    """The desired tags a resource lacks, or has with another value: a workflow's tags change
    between setups, and a resource made before keeps its old ones until tagged (tags someone
    else added stay)."""
    return {k: v for k, v in desired.items() if current.get(k) != v}


def tagged(tags: list[dict], pipeline: str) -> bool:
    return any(t.get("Key") == TAG_KEY and t.get("Value") == pipeline for t in tags)
