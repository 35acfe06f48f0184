"""Delete what is no longer wanted: clean-up is a deploy of an empty desired state.

Candidates come from the pipeline's state and, when AWS is reachable, from the
`yunpipe:pipeline` tag, so a lost state file still cleans up. Each candidate is read first:
what is already gone costs no call, which makes a second clean-up a no-op. Each kind
(yunpipe/engine/kinds/) deletes and discovers its own resources; this module orders them.
"""
from collections.abc import Set as AbstractSet

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds import BY_NAME, KINDS, SWEEP_ORDER, ResourceKey, SweepContext
from yunpipe.engine.kinds.base import TAG_KEY
from yunpipe.engine.kinds.notification import notification_id
from yunpipe.engine.plan import Call, Plan


def kind_of_arn(arn: str) -> ResourceKey | None:
    """The (kind, key) of an ARN the tagging API answers, or None for a kind yunpipe does not sweep."""
    for kind in KINDS:
        match = kind.arn_pattern.match(arn) if kind.arn_pattern else None
        if match:
            return kind.name, match.group("key")
    return None


def discover(reader: Reader, pipeline: str) -> set[ResourceKey]:
    """Everything tagged with the pipeline, found without the state file."""
    found = set()
    mappings = reader.pages("resourcegroupstaggingapi", "get_resources", "ResourceTagMappingList",
                            TagFilters=[{"Key": TAG_KEY, "Values": [pipeline]}])
    for mapping in mappings:
        resource = kind_of_arn(mapping["ResourceARN"])
        if resource:
            found.add(resource)
    # What the tagging API leaves out, kind by kind in creation order (capacity providers
    # are found from the Auto Scaling groups and the cluster found before them).
    for kind in KINDS:
        found |= kind.discover(reader, pipeline, found)
    return found


def attached(reader: Reader, pipeline: str, functions: set[str]) -> set[ResourceKey]:
    """The permissions of the pipeline's functions, and yunpipe's notification entries on the
    buckets those permissions name (a user's bucket carries no yunpipe tag)."""
    found = set()
    for function in functions:
        for sid, statement in reader.policy_statements(function).items():
            if not sid.startswith("yunpipe-"):
                continue
            found.add(("permission", f"{function}/{sid}"))
            source = statement.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn", "")
            bucket = kind_of_arn(source)
            if bucket and bucket[0] == "bucket":
                configuration = reader.notification_configuration(bucket[1])
                for entry in configuration.get("LambdaFunctionConfigurations", []):
                    if entry.get("Id", "").startswith(notification_id(pipeline, "")):
                        found.add(("notification", f"{bucket[1]}/{entry['Id']}"))
    return found


class Sweeper:
    def __init__(self, reader: Reader, purge: bool = False):
        self.reader = reader
        self.purge = purge

    def plan(self, candidates: AbstractSet[ResourceKey], keep: AbstractSet[ResourceKey] = frozenset()) -> Plan:
        """Calls deleting every candidate not in `keep`; buckets only with purge."""
        ctx = SweepContext(self.reader, self.purge, frozenset(candidates - set(keep)))
        calls: list[Call] = []
        gone: list[ResourceKey] = []
        for name in SWEEP_ORDER:
            kind = BY_NAME[name]
            if kind.kept_unless_purged and not self.purge:
                continue
            for key in sorted(k for c, k in candidates - set(keep) if c == name):
                deletes = kind.sweep(key, ctx)
                if deletes:
                    calls.extend(deletes)
                else:
                    gone.append((name, key))
        return Plan(tuple(calls), tuple(gone))
