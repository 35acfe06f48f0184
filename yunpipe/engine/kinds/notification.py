"""S3 notifications: a bucket's entry that invokes a step's launcher, merged with the bucket's others."""
import dataclasses
from dataclasses import dataclass
from typing import Any

from yunpipe.engine.kinds.base import Kind, PlanContext, SweepContext, call, delete
from yunpipe.engine.plan import Call, Transient
from yunpipe.engine.template import Template
from yunpipe.errors import InputError

# S3 validates a Lambda destination against the function's policy, and sees a permission added
# moments ago (kinds/permission.py, just before) only some seconds later. A permission that is
# missing for good fails the same way, once the budget is spent.
PERMISSION_SETTLING = (Transient("InvalidArgument", "Unable to validate the following destination configurations"),)


def notification_id(pipeline: str, step: str) -> str:
    """The Id of a step's entry; with step "", the prefix of all the pipeline's entries."""
    # ':' never appears in pipeline names, so one pipeline's prefix never matches another's.
    return f"yunpipe:{pipeline}:{step}"


@dataclass(frozen=True)
class Notification:
    bucket: str
    id: str
    function_arn: str
    prefix: str = ""
    suffix: str = ""
    kind = "notification"

    @property
    def key(self) -> str:
        return f"{self.bucket}/{self.id}"

    def entry(self) -> dict:
        """The LambdaFunctionConfigurations entry as S3 takes it."""
        entry: dict[str, Any] = {"Id": self.id, "LambdaFunctionArn": self.function_arn, "Events": ["s3:ObjectCreated:*"]}
        rules = [{"Name": name, "Value": value} for name, value in (("prefix", self.prefix), ("suffix", self.suffix)) if value]
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": rules}}
        return entry


class NotificationKind(Kind[Notification]):
    name = "notification"

    def plan(self, notification: Notification, ctx: PlanContext) -> list[Call]:
        configuration = ctx.reader.notification_configuration(notification.bucket)
        entries = configuration.get("LambdaFunctionConfigurations", [])
        mine = [e for e in entries if e.get("Id") == notification.id]
        if mine and _normal_entry(mine[0]) == _normal_entry(notification.entry()):
            return []
        # Merged: every other entry of the bucket is kept as it is.
        others = [e for e in entries if e.get("Id") != notification.id]
        merged = {**configuration, "LambdaFunctionConfigurations": [*others, notification.entry()]}
        put = call(notification, "create", "s3", "put_bucket_notification_configuration",
                   f"notify {notification.function_arn.rsplit(':', 1)[-1]} of new objects in "
                   f"{notification.bucket} (keeping {count_entries(configuration) - len(mine)} other "
                   "notification(s))", Bucket=notification.bucket, NotificationConfiguration=merged)
        return [dataclasses.replace(put, retry_on=PERMISSION_SETTLING)]

    def check(self, notification: Notification, ctx: PlanContext) -> list[InputError]:
        """S3 rejects a configuration with overlapping entries ("Configuration is ambiguously
        defined"): another notification already on the bucket that overlaps this one is bad input,
        found before anything is created."""
        configuration = ctx.reader.notification_configuration(notification.bucket)
        wanted = notification.entry()
        findings = []
        for kind in ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations"):
            for entry in configuration.get(kind, []):
                if entry.get("Id") != notification.id and overlap(wanted, entry):
                    prefix, suffix = _key_filter(entry)
                    findings.append(InputError(
                        ctx.source, "filter",
                        f"expected a prefix/suffix that does not overlap notification '{entry.get('Id')}' already on "
                        f"bucket {notification.bucket} (events {', '.join(entry.get('Events', []))}, prefix "
                        f"'{prefix}', suffix '{suffix}'): S3 refuses two notifications of the same event whose "
                        "prefixes and suffixes overlap"))
        return findings

    def sweep(self, key: str, ctx: SweepContext) -> list[Call]:
        bucket, entry_id = key.split("/", 1)
        configuration = ctx.reader.notification_configuration(bucket)
        entries = configuration.get("LambdaFunctionConfigurations", [])
        if not any(e.get("Id") == entry_id for e in entries):
            return []
        # Only yunpipe's own entry goes; the bucket keeps every other notification.
        remaining = {**configuration, "LambdaFunctionConfigurations": [e for e in entries if e.get("Id") != entry_id]}
        return [delete("notification", key, "s3", "put_bucket_notification_configuration",
                       f"remove notification {entry_id} from bucket {bucket} (others kept)",
                       Bucket=bucket, NotificationConfiguration=remaining)]

    def cloudformation(self, notification: Notification, template: Template) -> dict[str, dict]:
        """Part of the bucket's own resource, created once S3 may invoke the launcher (S3 checks)."""
        entry = notification.entry()
        function = notification.function_arn.rsplit(":", 1)[-1]
        source = f"arn:{notification.function_arn.split(':')[1]}:s3:::{notification.bucket}"
        permissions = [template.id(p.kind, p.key) for p in template.of_kind(
            "permission", lambda p: p.function == function and p.source_arn == source)]
        rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        configurations = [{"Event": event, "Function": template.attribute("function", function, "Arn"),
                           **({"Filter": {"S3Key": {"Rules": rules}}} if rules else {})} for event in entry["Events"]]
        return {template.id("bucket", notification.bucket): {
            "DependsOn": permissions,
            "Properties": {"NotificationConfiguration": {"LambdaConfigurations": configurations}}}}


def count_entries(configuration: dict) -> int:
    """The notifications of a bucket's configuration, of every kind."""
    return sum(len(v) for v in configuration.values() if isinstance(v, list))


def _normal_entry(entry: dict) -> tuple:
    rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    # S3 answers "Prefix"/"Suffix" for the "prefix"/"suffix" it was given.
    return (entry.get("LambdaFunctionArn"), tuple(sorted(entry.get("Events", []))),
            tuple(sorted((r["Name"].lower(), r["Value"]) for r in rules)))


def _key_filter(entry: dict) -> tuple[str, str]:
    rules = {r["Name"].lower(): r["Value"] for r in entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])}
    return rules.get("prefix", ""), rules.get("suffix", "")


def _events_overlap(first: str, second: str) -> bool:
    def covers(wide: str, narrow: str) -> bool:  # "s3:ObjectCreated:*" covers "s3:ObjectCreated:Put"
        return wide == narrow or (wide.endswith(":*") and narrow.startswith(wide[:-1]))
    return covers(first, second) or covers(second, first)


def overlap(first: dict, second: dict) -> bool:
    """Whether S3 finds two notification entries ambiguous: an event type in common, one prefix
    starting the other and one suffix ending the other (an empty filter matches everything)."""
    (prefix1, suffix1), (prefix2, suffix2) = _key_filter(first), _key_filter(second)
    return (any(_events_overlap(a, b) for a in first.get("Events", []) for b in second.get("Events", []))
            and (prefix1.startswith(prefix2) or prefix2.startswith(prefix1))
            and (suffix1.endswith(suffix2) or suffix2.endswith(suffix1)))


KIND = NotificationKind()
