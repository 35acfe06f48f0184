"""Delete what is no longer wanted: clean-up is a deploy of an empty desired state.

Candidates come from the pipeline's state and, when AWS is reachable, from the
`yunpipe:pipeline` tag, so a lost state file still cleans up. Each candidate is read first:
what is already gone costs no call, which makes a second clean-up a no-op.
"""
import dataclasses
import re
from collections.abc import Set as AbstractSet

from yunpipe.aws.reader import NO_QUEUE, NOT_FOUND, Reader
from yunpipe.engine import model as m
from yunpipe.engine.plan import Call, Plan, Transient

# Dependents before what they depend on: the reverse of the order they are created in, except
# that an Auto Scaling group goes before the cluster. Its instances are the cluster's container
# instances, which keep ECS from deleting the cluster; the cluster's deletion in turn detaches
# its capacity providers, which ECS deletes only once detached.
_REVERSED = [kind for kind in reversed(m.CREATION_ORDER) if kind != "auto_scaling_group"]
ORDER = tuple(_REVERSED[:_REVERSED.index("cluster")] + ["auto_scaling_group"] + _REVERSED[_REVERSED.index("cluster"):])
ARN_KINDS = (
    (re.compile(r"^arn:[^:]+:sqs:[^:]*:\d+:(?P<key>.+)$"), "queue"),
    (re.compile(r"^arn:[^:]+:lambda:[^:]*:\d+:function:(?P<key>[^:]+)$"), "function"),
    (re.compile(r"^arn:[^:]+:ecs:[^:]*:\d+:cluster/(?P<key>.+)$"), "cluster"),
    (re.compile(r"^arn:[^:]+:ecs:[^:]*:\d+:task-definition/(?P<key>[^:]+):\d+$"), "task_definition"),
    (re.compile(r"^arn:[^:]+:events:[^:]*:\d+:rule/(?P<key>.+)$"), "rule"),
    (re.compile(r"^arn:[^:]+:logs:[^:]*:\d+:log-group:(?P<key>[^:]+)(:\*)?$"), "log_group"),
    (re.compile(r"^arn:[^:]+:ssm:[^:]*:\d+:parameter(?P<key>/.+)$"), "parameter"),
    (re.compile(r"^arn:[^:]+:s3:::(?P<key>[^/]+)$"), "bucket"),
)


def kind_of_arn(arn: str) -> tuple[str, str] | None:
    for pattern, kind in ARN_KINDS:
        match = pattern.match(arn)
        if match:
            return kind, match.group("key")
    return None


def _tagged(tags: list[dict], pipeline: str) -> bool:
    return any(t.get("Key") == m.TAG_KEY and t.get("Value") == pipeline for t in tags)


def discover(reader: Reader, pipeline: str) -> set[tuple[str, str]]:
    """Everything tagged with the pipeline, found without the state file."""
    found = set()
    mappings = reader.pages("resourcegroupstaggingapi", "get_resources", "ResourceTagMappingList",
                            TagFilters=[{"Key": m.TAG_KEY, "Values": [pipeline]}])
    for mapping in mappings:
        resource = kind_of_arn(mapping["ResourceARN"])
        if resource:
            found.add(resource)
    # IAM is global and EventBridge rules are not listed by every tagging API: asked directly.
    for role in reader.pages("iam", "list_roles", "Roles", PathPrefix=m.ROLE_PATH):
        tags = reader.read("iam", "list_role_tags", ("NoSuchEntity",), RoleName=role["RoleName"]) or {}
        if _tagged(tags.get("Tags", []), pipeline):
            found.add(("role", role["RoleName"]))
    for profile in reader.pages("iam", "list_instance_profiles", "InstanceProfiles", PathPrefix=m.ROLE_PATH):
        # Listings leave tags out.
        tags = reader.read("iam", "get_instance_profile", ("NoSuchEntity",),
                           InstanceProfileName=profile["InstanceProfileName"]) or {}
        if _tagged(tags.get("InstanceProfile", {}).get("Tags", []), pipeline):
            found.add(("instance_profile", profile["InstanceProfileName"]))
    tag_filter = [{"Name": f"tag:{m.TAG_KEY}", "Values": [pipeline]}]
    for template in reader.pages("ec2", "describe_launch_templates", "LaunchTemplates", Filters=tag_filter):
        found.add(("launch_template", template["LaunchTemplateName"]))
    for group in reader.pages("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups", Filters=tag_filter):
        found.add(("auto_scaling_group", group["AutoScalingGroupName"]))
    # A provider is named as its group, and attached to the pipeline's cluster.
    names = {key for kind, key in found if kind == "auto_scaling_group"}
    for kind, cluster in list(found):
        if kind == "cluster":
            clusters = reader.read("ecs", "describe_clusters", clusters=[cluster]) or {}
            names.update(p for c in clusters.get("clusters", []) for p in c.get("capacityProviders") or [])
    names -= {"FARGATE", "FARGATE_SPOT"}
    if names:
        providers = reader.read("ecs", "describe_capacity_providers", capacityProviders=sorted(names),
                                include=["TAGS"]) or {}
        for provider in providers.get("capacityProviders", []):
            if _tagged([{"Key": t.get("key"), "Value": t.get("value")} for t in provider.get("tags", [])], pipeline):
                found.add(("capacity_provider", provider["name"]))
    for rule in reader.pages("events", "list_rules", "Rules", NamePrefix=f"yunpipe-{pipeline}-"):
        tags = reader.read("events", "list_tags_for_resource", NOT_FOUND, ResourceARN=rule["Arn"]) or {}
        if _tagged(tags.get("Tags", []), pipeline):
            found.add(("rule", rule["Name"]))
    return found


def attached(reader: Reader, pipeline: str, functions: set[str]) -> set[tuple[str, str]]:
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
                    if entry.get("Id", "").startswith(f"yunpipe:{pipeline}:"):
                        found.add(("notification", f"{bucket[1]}/{entry['Id']}"))
    return found


class Sweeper:
    def __init__(self, reader: Reader, purge: bool = False):
        self.reader = reader
        self.purge = purge

    def plan(self, candidates: AbstractSet[tuple[str, str]], keep: AbstractSet[tuple[str, str]] = frozenset()) -> Plan:
        """Calls deleting every candidate not in `keep`; buckets only with purge."""
        calls: list[Call] = []
        gone: list[tuple[str, str]] = []
        for kind in ORDER:
            for key in sorted(k for c, k in candidates - set(keep) if c == kind):
                if kind == "bucket" and not self.purge:
                    continue
                deletes = getattr(self, f"_{kind}")(key)
                if deletes:
                    calls.extend(deletes)
                else:
                    gone.append((kind, key))
        return Plan(tuple(calls), tuple(gone))

    def _delete(self, kind: str, key: str, service: str, operation: str, message: str, last: bool = True,
                **params) -> Call:
        return Call(service, operation, params, message, kind, key, "delete", "remove" if last else "",
                    done_codes=NOT_FOUND + NO_QUEUE + ("NoSuchEntity", "ParameterNotFound", "NoSuchBucket"))

    def _rule(self, name: str) -> list[Call]:
        if self.reader.read("events", "describe_rule", NOT_FOUND, Name=name) is None:
            return []
        calls = []
        targets = [t["Id"] for t in self.reader.pages("events", "list_targets_by_rule", "Targets", NOT_FOUND, Rule=name)]
        if targets:
            calls.append(self._delete("rule", name, "events", "remove_targets", f"remove the targets of rule {name}",
                                      last=False, Rule=name, Ids=targets))
        calls.append(self._delete("rule", name, "events", "delete_rule", f"delete rule {name}", Name=name))
        return calls

    def _notification(self, key: str) -> list[Call]:
        bucket, entry_id = key.split("/", 1)
        configuration = self.reader.notification_configuration(bucket)
        entries = configuration.get("LambdaFunctionConfigurations", [])
        if not any(e.get("Id") == entry_id for e in entries):
            return []
        # Only yunpipe's own entry goes; the bucket keeps every other notification.
        remaining = {**configuration, "LambdaFunctionConfigurations": [e for e in entries if e.get("Id") != entry_id]}
        return [self._delete("notification", key, "s3", "put_bucket_notification_configuration",
                             f"remove notification {entry_id} from bucket {bucket} (others kept)",
                             Bucket=bucket, NotificationConfiguration=remaining)]

    def _bucket_events(self, bucket: str) -> list[Call]:
        configuration = self.reader.notification_configuration(bucket)
        if "EventBridgeConfiguration" not in configuration:
            return []
        # Only in the state when setup-pipe switched it on: the bucket keeps its notifications.
        remaining = {k: v for k, v in configuration.items() if k != "EventBridgeConfiguration"}
        return [self._delete("bucket_events", bucket, "s3", "put_bucket_notification_configuration",
                             f"stop sending the events of bucket {bucket} to EventBridge", Bucket=bucket,
                             NotificationConfiguration=remaining)]

    def _permission(self, key: str) -> list[Call]:
        function, sid = key.split("/", 1)
        if sid not in self.reader.policy_statements(function):
            return []
        return [self._delete("permission", key, "lambda", "remove_permission",
                             f"remove permission {sid} of {function}", FunctionName=function, StatementId=sid)]

    def _function(self, name: str) -> list[Call]:
        if self.reader.read("lambda", "get_function", NOT_FOUND, FunctionName=name) is None:
            return []
        return [self._delete("function", name, "lambda", "delete_function", f"delete launcher Lambda {name}",
                             FunctionName=name)]

    def _revisions(self, family: str, status: str) -> list[str]:
        arns = self.reader.pages("ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=family,
                                 status=status)
        # familyPrefix is a prefix: keep this family's revisions only.
        return [a for a in arns if a.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]

    def _task_definition(self, family: str) -> list[Call]:
        active, inactive = self._revisions(family, "ACTIVE"), self._revisions(family, "INACTIVE")
        calls = [self._delete("task_definition", family, "ecs", "deregister_task_definition",
                              f"deregister task definition {arn.rsplit('/', 1)[-1]}", last=False, taskDefinition=arn)
                 for arn in active]
        revisions = active + inactive
        # DeleteTaskDefinitions takes at most 10 revisions per call.
        chunks = [revisions[i:i + 10] for i in range(0, len(revisions), 10)]
        for index, chunk in enumerate(chunks):
            calls.append(self._delete("task_definition", family, "ecs", "delete_task_definitions",
                                      f"delete {len(chunk)} revision(s) of task definition {family}",
                                      last=index == len(chunks) - 1, taskDefinitions=chunk))
        return calls

    def _cluster(self, name: str) -> list[Call]:
        found = self.reader.read("ecs", "describe_clusters", clusters=[name])
        if not found or not any(c["status"] == "ACTIVE" for c in found["clusters"]):
            return []
        calls = [self._delete("cluster", name, "ecs", "stop_task", f"stop task {arn.rsplit('/', 1)[-1]}", last=False,
                              cluster=name, task=arn, reason="yunpipe clean-up")
                 for arn in self.reader.pages("ecs", "list_tasks", "taskArns", cluster=name)]
        # A deleted cluster lingers as INACTIVE; untagged, it no longer shows as the pipeline's.
        calls.append(self._delete("cluster", name, "ecs", "untag_resource", f"untag ECS cluster {name}", last=False,
                                  resourceArn=found["clusters"][0]["clusterArn"], tagKeys=[m.TAG_KEY]))
        call = self._delete("cluster", name, "ecs", "delete_cluster", f"delete ECS cluster {name}", cluster=name)
        # Stopped tasks take a moment to leave the cluster, instances of a deleted Auto Scaling group too.
        calls.append(dataclasses.replace(call, retry_on=(Transient("ClusterContainsTasksException"),
                                                         Transient("ClusterContainsContainerInstancesException"))))
        return calls

    def _auto_scaling_group(self, name: str) -> list[Call]:
        found = self.reader.read("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[name])
        if not (found or {}).get("AutoScalingGroups"):
            return []
        # Forced: its instances are terminated with it (their tasks are the pipeline's own).
        return [self._delete("auto_scaling_group", name, "autoscaling", "delete_auto_scaling_group",
                             f"delete Auto Scaling group {name} and its instances", AutoScalingGroupName=name,
                             ForceDelete=True)]

    def _capacity_provider(self, name: str) -> list[Call]:
        found = self.reader.read("ecs", "describe_capacity_providers", capacityProviders=[name])
        if not any(p.get("status") == "ACTIVE" for p in (found or {}).get("capacityProviders", [])):
            return []
        return [self._delete("capacity_provider", name, "ecs", "delete_capacity_provider",
                             f"delete capacity provider {name}", capacityProvider=name)]

    def _launch_template(self, name: str) -> list[Call]:
        found = self.reader.read("ec2", "describe_launch_templates", ("InvalidLaunchTemplateName.NotFoundException",),
                                 LaunchTemplateNames=[name])
        if not (found or {}).get("LaunchTemplates"):
            return []
        return [self._delete("launch_template", name, "ec2", "delete_launch_template", f"delete launch template {name}",
                             LaunchTemplateName=name)]

    def _instance_profile(self, name: str) -> list[Call]:
        found = self.reader.read("iam", "get_instance_profile", ("NoSuchEntity",), InstanceProfileName=name)
        if found is None:
            return []
        calls = [self._delete("instance_profile", name, "iam", "remove_role_from_instance_profile",
                              f"remove role {r['RoleName']} from instance profile {name}", last=False,
                              InstanceProfileName=name, RoleName=r["RoleName"])
                 for r in found["InstanceProfile"].get("Roles", [])]
        calls.append(self._delete("instance_profile", name, "iam", "delete_instance_profile",
                                  f"delete instance profile {name}", InstanceProfileName=name))
        return calls

    def _queue(self, name: str) -> list[Call]:
        url = self.reader.queue_url(name)
        if url is None:
            return []
        return [self._delete("queue", name, "sqs", "delete_queue", f"delete queue {name}", QueueUrl=url)]

    def _role(self, name: str) -> list[Call]:
        if self.reader.read("iam", "get_role", ("NoSuchEntity",), RoleName=name) is None:
            return []
        calls = [self._delete("role", name, "iam", "delete_role_policy", f"delete policy {policy} of role {name}",
                              last=False, RoleName=name, PolicyName=policy)
                 for policy in self.reader.pages("iam", "list_role_policies", "PolicyNames", RoleName=name)]
        calls += [self._delete("role", name, "iam", "detach_role_policy",
                               f"detach policy {p['PolicyName']} from role {name}", last=False, RoleName=name,
                               PolicyArn=p["PolicyArn"])
                  for p in self.reader.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name)]
        calls.append(self._delete("role", name, "iam", "delete_role", f"delete role {name}", RoleName=name))
        return calls

    def _log_group(self, name: str) -> list[Call]:
        groups = self.reader.pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=name)
        if not any(g["logGroupName"] == name for g in groups):
            return []
        return [self._delete("log_group", name, "logs", "delete_log_group", f"delete log group {name}",
                             logGroupName=name)]

    def _parameter(self, name: str) -> list[Call]:
        if self.reader.read("ssm", "get_parameter", ("ParameterNotFound",), Name=name) is None:
            return []
        return [self._delete("parameter", name, "ssm", "delete_parameter", f"delete parameter {name}", Name=name)]

    def _bucket(self, name: str) -> list[Call]:
        if not self.reader.bucket_exists(name):
            return []
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for key in ("Versions", "DeleteMarkers")
                   for page in self._version_pages(name) for v in page.get(key, [])]
        calls = [self._delete("bucket", name, "s3", "delete_objects",
                              f"empty bucket {name} ({len(objects[i:i + 1000])} object version(s))", last=False,
                              Bucket=name, Delete={"Objects": objects[i:i + 1000], "Quiet": True})
                 for i in range(0, len(objects), 1000)]
        calls.append(self._delete("bucket", name, "s3", "delete_bucket", f"delete bucket {name}", Bucket=name))
        return calls

    def _version_pages(self, bucket: str) -> list[dict]:
        if self.reader.offline:
            return []
        return list(self.reader.aws.client("s3").get_paginator("list_object_versions").paginate(Bucket=bucket))
