"""A bucket's events sent to EventBridge: how several steps each take what arrives in one bucket."""
from dataclasses import dataclass

from yunpipe.engine.kinds.base import Kind, PlanContext, SweepContext, call, delete
from yunpipe.engine.kinds.notification import count_entries
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template


@dataclass(frozen=True)
class BucketEvents:
    """The bucket sends its events to EventBridge: how several steps each take what arrives in
    one bucket, which S3's own notifications refuse when their filters overlap."""

    bucket: str
    kind = "bucket_events"

    @property
    def key(self) -> str:
        return self.bucket


class BucketEventsKind(Kind[BucketEvents]):
    name = "bucket_events"

    def plan(self, events: BucketEvents, ctx: PlanContext) -> list[Call]:
        configuration = ctx.reader.notification_configuration(events.bucket)
        if "EventBridgeConfiguration" in configuration:
            return []
        # Merged: the bucket keeps every notification it has.
        merged = {**configuration, "EventBridgeConfiguration": {}}
        return [call(events, "create", "s3", "put_bucket_notification_configuration",
                     f"send the events of bucket {events.bucket} to EventBridge (several steps read it; keeping "
                     f"{count_entries(configuration)} notification(s))",
                     Bucket=events.bucket, NotificationConfiguration=merged)]

    def sweep(self, bucket: str, ctx: SweepContext) -> list[Call]:
        configuration = ctx.reader.notification_configuration(bucket)
        if "EventBridgeConfiguration" not in configuration:
            return []
        # Only in the state when setup-pipe switched it on: the bucket keeps its notifications.
        remaining = {k: v for k, v in configuration.items() if k != "EventBridgeConfiguration"}
        return [delete("bucket_events", bucket, "s3", "put_bucket_notification_configuration",
                       f"stop sending the events of bucket {bucket} to EventBridge", Bucket=bucket,
                       NotificationConfiguration=remaining)]

    def cloudformation(self, events: BucketEvents, template: Template) -> dict[str, dict]:
        # Part of the bucket's own resource, merged into it.
        return {template.id("bucket", events.bucket): {"Properties": {"NotificationConfiguration": {
            "EventBridgeConfiguration": {"EventBridgeEnabled": True}}}}}


KIND = BucketEventsKind()
