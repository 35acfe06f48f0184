"""Compare the desired resources with what exists (reads only) and return the calls that close
the gap. Unchanged resources give no call, so re-running setup-pipe plans nothing.
"""
import dataclasses
import json
import urllib.parse
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import Any

from yunpipe.aws.reader import NOT_FOUND, Reader
from yunpipe.errors import InputError
from yunpipe.pipeline import model as m
from yunpipe.pipeline.plan import Call, Plan, Ref, Transient
from yunpipe.runtime import launcher_package

# Lambda keeps this many of an account's executions unreserved; an account with fewer
# to spare (new accounts start at 10 in all) cannot reserve any.
MIN_UNRESERVED_EXECUTIONS = 100
# SQS refuses a queue name for 60 s after its deletion (a setup right after a clean-up).
QUEUE_NAME_IN_USE = (Transient("AWS.SimpleQueueService.QueueDeletedRecently"), Transient("QueueDeletedRecently"))
# Lambda is eventually consistent: a new role is not assumable for some seconds, and a function
# being created or updated rejects another change for a moment.
LAMBDA_SETTLING = (Transient("InvalidParameterValueException", "cannot be assumed by Lambda"),
                   Transient("ResourceConflictException"))


def resolve(value: Any, known: dict[str, Any]) -> Any:
    """Replace QueueUrl markers with the URL (or a Ref to it when the queue is new)."""
    if isinstance(value, m.QueueUrl):
        return known[value.queue]
    if isinstance(value, dict):
        return {k: resolve(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, known) for v in value]
    return value


def _policy_document(value: Any) -> Any:
    """IAM documents come back as dicts from boto3, or URL-encoded strings from some emulators."""
    if isinstance(value, str):
        return json.loads(urllib.parse.unquote(value))
    return value


def _tag_list(tags, key="Key", value="Value") -> list[dict]:
    return [{key: k, value: v} for k, v in tags.items()]


class Planner:
    def __init__(self, reader: Reader, owned: AbstractSet[tuple[str, str]] = frozenset()):
        self.reader = reader
        # What the state says yunpipe created: only those buckets are checked for settings.
        self.owned = owned
        self.queue_urls: dict[str, Any] = {}
        self.notes: list[str] = []
        # The account's unreserved Lambda executions, less what this plan reserves; None when
        # unknown (emulators without GetAccountSettings have no limit to respect).
        self._unreserved: int | None = None
        self._unreserved_read = False

    def plan(self, model: m.PipelineModel, resources: Iterable | None = None) -> Plan:
        """Calls for every resource of the model, or only for `resources` (in model order)."""
        wanted = None if resources is None else [(r.kind, r.key) for r in resources]
        calls: list[Call] = []
        for resource in model.resources():
            if wanted is None or (resource.kind, resource.key) in wanted:
                calls.extend(getattr(self, f"_{resource.kind}")(resource, model))
        return Plan(tuple(calls), notes=tuple(self.notes))

    def _call(self, resource, action: str, service: str, operation: str, message: str, **params) -> Call:
        return Call(service, operation, params, message, resource.kind, resource.key, action)

    def _bucket(self, bucket: m.Bucket, model: m.PipelineModel) -> list[Call]:
        read = self.reader.read
        calls = []
        exists = self.reader.bucket_exists(bucket.name)
        if exists and ("bucket", bucket.name) not in self.owned:
            return []  # someone else's bucket: used, never altered (beyond notifications)
        if not exists:
            params: dict[str, Any] = {"Bucket": bucket.name}
            if model.target.region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": model.target.region}
            calls.append(self._call(bucket, "create", "s3", "create_bucket",
                                    f"create {bucket.purpose} bucket {bucket.name}", **params))
        # A bucket yunpipe created is checked each time, so a setup that stopped half-way
        # completes its settings.
        if not exists or not read("s3", "get_public_access_block", ("NoSuchPublicAccessBlockConfiguration",),
                                  Bucket=bucket.name):
            calls.append(self._call(bucket, "update", "s3", "put_public_access_block",
                                    f"block public access to bucket {bucket.name}", Bucket=bucket.name,
                                    PublicAccessBlockConfiguration={
                                        "BlockPublicAcls": True, "IgnorePublicAcls": True,
                                        "BlockPublicPolicy": True, "RestrictPublicBuckets": True}))
        if not exists or not read("s3", "get_bucket_encryption", ("ServerSideEncryptionConfigurationNotFoundError",),
                                  Bucket=bucket.name):
            calls.append(self._call(bucket, "update", "s3", "put_bucket_encryption",
                                    f"encrypt bucket {bucket.name} at rest (AES256)", Bucket=bucket.name,
                                    ServerSideEncryptionConfiguration={"Rules": [
                                        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}))
        tagged = exists and read("s3", "get_bucket_tagging", ("NoSuchTagSet",), Bucket=bucket.name)
        if not tagged or {t["Key"]: t["Value"] for t in tagged["TagSet"]}.get(m.TAG_KEY) != model.name:
            calls.append(self._call(bucket, "update", "s3", "put_bucket_tagging", f"tag bucket {bucket.name}",
                                    Bucket=bucket.name, Tagging={"TagSet": _tag_list(bucket.tags)}))
        return calls

    def _log_group(self, group: m.LogGroup, model: m.PipelineModel) -> list[Call]:
        found = [g for g in self.reader.pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=group.name)
                 if g["logGroupName"] == group.name]
        calls = []
        if not found:
            calls.append(self._call(group, "create", "logs", "create_log_group", f"create log group {group.name}",
                                    logGroupName=group.name, tags=dict(group.tags)))
        if not found or found[0].get("retentionInDays") != group.retention_days:
            calls.append(self._call(group, "update", "logs", "put_retention_policy",
                                    f"keep logs of {group.name} for {group.retention_days} days",
                                    logGroupName=group.name, retentionInDays=group.retention_days))
        return calls

    def _queue(self, queue: m.Queue, model: m.PipelineModel) -> list[Call]:
        url = self.reader.queue_url(queue.name)
        if url is None:
            ref = Ref(f"queue_url:{queue.name}")
            self.queue_urls[queue.name] = ref
            call = self._call(queue, "create", "sqs", "create_queue", f"create queue {queue.name} (encrypted)",
                              QueueName=queue.name, Attributes=dict(queue.attributes), tags=dict(queue.tags))
            return [dataclasses.replace(call, outputs=((ref.name, "QueueUrl"),),
                                        retry_on=QUEUE_NAME_IN_USE)]
        self.queue_urls[queue.name] = url
        current = self.reader.read("sqs", "get_queue_attributes", QueueUrl=url, AttributeNames=["All"])["Attributes"]
        changed = {k: v for k, v in queue.attributes.items() if not _same_attribute(k, current.get(k), v)}
        if not changed:
            return []
        return [self._call(queue, "update", "sqs", "set_queue_attributes",
                           f"update queue {queue.name}: {', '.join(sorted(changed))}", QueueUrl=url, Attributes=changed)]

    def _parameter(self, parameter: m.Parameter, model: m.PipelineModel) -> list[Call]:
        found = self.reader.read("ssm", "get_parameter", ("ParameterNotFound",), Name=parameter.name,
                                 WithDecryption=True)
        if found is None:
            return [self._call(parameter, "create", "ssm", "put_parameter",
                               f"store your {parameter.variable} as SecureString parameter {parameter.name}",
                               Name=parameter.name, Value=parameter.value, Type="SecureString",
                               Tags=_tag_list(parameter.tags))]
        if found["Parameter"]["Value"] != parameter.value:
            return [self._call(parameter, "update", "ssm", "put_parameter",
                               f"update SecureString parameter {parameter.name}",
                               Name=parameter.name, Value=parameter.value, Type="SecureString", Overwrite=True)]
        return []

    def _role(self, role: m.Role, model: m.PipelineModel) -> list[Call]:
        read = self.reader.read
        found = read("iam", "get_role", ("NoSuchEntity",), RoleName=role.name)
        calls = []
        if found is None:
            calls.append(self._call(role, "create", "iam", "create_role", f"create role {role.name}",
                                    RoleName=role.name, Path=m.ROLE_PATH, Description=role.description,
                                    AssumeRolePolicyDocument=json.dumps(role.trust_policy), Tags=_tag_list(role.tags)))
        elif _policy_document(found["Role"]["AssumeRolePolicyDocument"]) != role.trust_policy:
            calls.append(self._call(role, "update", "iam", "update_assume_role_policy",
                                    f"update who may assume role {role.name}", RoleName=role.name,
                                    PolicyDocument=json.dumps(role.trust_policy)))
        policy = found and read("iam", "get_role_policy", ("NoSuchEntity",), RoleName=role.name,
                                PolicyName=role.policy_name)
        if not policy or _policy_document(policy["PolicyDocument"]) != role.policy:
            calls.append(self._call(role, "update", "iam", "put_role_policy", f"set the policy of role {role.name}",
                                    RoleName=role.name, PolicyName=role.policy_name,
                                    PolicyDocument=json.dumps(role.policy)))
        return calls

    def _instance_profile(self, profile: m.InstanceProfile, model: m.PipelineModel) -> list[Call]:
        found = self.reader.read("iam", "get_instance_profile", ("NoSuchEntity",), InstanceProfileName=profile.name)
        calls = []
        roles = [r["RoleName"] for r in (found or {}).get("InstanceProfile", {}).get("Roles", [])]
        if found is None:
            calls.append(self._call(profile, "create", "iam", "create_instance_profile",
                                    f"create instance profile {profile.name} (for the pipeline's EC2 instances)",
                                    InstanceProfileName=profile.name, Path=m.ROLE_PATH, Tags=_tag_list(profile.tags)))
        # A profile holds one role.
        calls += [self._call(profile, "update", "iam", "remove_role_from_instance_profile",
                             f"remove role {role} from instance profile {profile.name}",
                             InstanceProfileName=profile.name, RoleName=role) for role in roles if role != profile.role]
        if profile.role not in roles:
            calls.append(self._call(profile, "update", "iam", "add_role_to_instance_profile",
                                    f"give instance profile {profile.name} role {profile.role}",
                                    InstanceProfileName=profile.name, RoleName=profile.role))
        return calls

    def _launch_template(self, template: m.LaunchTemplate, model: m.PipelineModel) -> list[Call]:
        self._check_ami(template, model)
        found = self.reader.read("ec2", "describe_launch_template_versions",
                                 ("InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"),
                                 LaunchTemplateName=template.name, Versions=["$Latest"])
        what = (f"{template.data['InstanceType']}, AMI {template.data['ImageId'].split(':', 2)[-1]}, "
                "IMDSv2 only")
        if found is None:
            return [self._call(template, "create", "ec2", "create_launch_template",
                               f"create launch template {template.name} ({what})", LaunchTemplateName=template.name,
                               LaunchTemplateData=dict(template.data),
                               TagSpecifications=[{"ResourceType": "launch-template", "Tags": _tag_list(template.tags)}])]
        current = found["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        if all(current.get(k) == v for k, v in template.data.items()):
            return []
        # The Auto Scaling group launches $Latest: a new version is all a change needs.
        return [self._call(template, "update", "ec2", "create_launch_template_version",
                           f"new version of launch template {template.name} ({what})",
                           LaunchTemplateName=template.name, LaunchTemplateData=dict(template.data))]

    def _check_ami(self, template: m.LaunchTemplate, model: m.PipelineModel) -> None:
        """The AMI's public parameter exists in the region (a GPU AMI is not in every region)."""
        if self.reader.offline:
            return
        parameter = template.data["ImageId"].split(":", 2)[-1]
        if self.reader.read("ssm", "get_parameter", ("ParameterNotFound",), Name=parameter) is None:
            raise InputError(model.source, "instance_type",
                             f"expected a region with an ECS-optimized AMI for {template.data['InstanceType']}: "
                             f"{model.target.region} has no parameter {parameter}")

    def _auto_scaling_group(self, group: m.AutoScalingGroup, model: m.PipelineModel) -> list[Call]:
        found = self.reader.read("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[group.name])
        current = (found or {}).get("AutoScalingGroups") or [{}]
        settings = {"LaunchTemplate": {"LaunchTemplateName": group.launch_template, "Version": "$Latest"},
                    "MinSize": 0, "MaxSize": group.max_size, "VPCZoneIdentifier": ",".join(group.subnets),
                    "NewInstancesProtectedFromScaleIn": False}
        if not current[0]:
            return [self._call(group, "create", "autoscaling", "create_auto_scaling_group",
                               f"create Auto Scaling group {group.name} (0 to {group.max_size} instances, "
                               f"scaled by ECS)", AutoScalingGroupName=group.name, DesiredCapacity=0, **settings,
                               Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in group.tags.items()])]
        existing = current[0]
        template = existing.get("LaunchTemplate") or {}
        if ({k: template.get(k) for k in ("LaunchTemplateName", "Version")} == settings["LaunchTemplate"]
                and existing.get("MinSize") == 0 and existing.get("MaxSize") == group.max_size
                and set(filter(None, existing.get("VPCZoneIdentifier", "").split(","))) == set(group.subnets)
                and existing.get("NewInstancesProtectedFromScaleIn") is False):
            return []
        # DesiredCapacity is left to ECS managed scaling.
        return [self._call(group, "update", "autoscaling", "update_auto_scaling_group",
                           f"update Auto Scaling group {group.name} (0 to {group.max_size} instances)",
                           AutoScalingGroupName=group.name, **settings)]

    def _capacity_provider(self, provider: m.CapacityProvider, model: m.PipelineModel) -> list[Call]:
        found = self.reader.read("ecs", "describe_capacity_providers", capacityProviders=[provider.name])
        active = [p for p in (found or {}).get("capacityProviders", []) if p.get("status") == "ACTIVE"]
        scaling = {"status": "ENABLED", "targetCapacity": m.TARGET_CAPACITY}
        if not active:
            return [self._call(provider, "create", "ecs", "create_capacity_provider",
                               f"create capacity provider {provider.name} (ECS scales {provider.auto_scaling_group} "
                               "from 0 to what waiting tasks need)", name=provider.name,
                               autoScalingGroupProvider={"autoScalingGroupArn": provider.auto_scaling_group,
                                                         "managedScaling": scaling,
                                                         "managedTerminationProtection": "DISABLED"},
                               tags=_tag_list(provider.tags, "key", "value"))]
        current = active[0].get("autoScalingGroupProvider", {}).get("managedScaling", {})
        if all(current.get(k) == v for k, v in scaling.items()):
            return []
        return [self._call(provider, "update", "ecs", "update_capacity_provider",
                           f"let ECS scale {provider.auto_scaling_group} (managed scaling, target "
                           f"{m.TARGET_CAPACITY}%)", name=provider.name,
                           autoScalingGroupProvider={"managedScaling": scaling,
                                                     "managedTerminationProtection": "DISABLED"})]

    def _cluster(self, cluster: m.Cluster, model: m.PipelineModel) -> list[Call]:
        found = self.reader.read("ecs", "describe_clusters", clusters=[cluster.name])
        active = [c for c in (found or {}).get("clusters", []) if c["status"] == "ACTIVE"]
        providers = list(cluster.capacity_providers)
        if not active:
            # A cluster of steps all on on-demand Fargate is created exactly as before, with no providers.
            extra: dict[str, Any] = {"capacityProviders": providers} if providers else {}
            what = f" with capacity providers {', '.join(providers)}" if providers else ""
            return [self._call(cluster, "create", "ecs", "create_cluster", f"create ECS cluster {cluster.name}{what}",
                               clusterName=cluster.name, tags=_tag_list(cluster.tags, "key", "value"), **extra)]
        current = list(active[0].get("capacityProviders") or [])
        missing = [p for p in providers if p not in current]
        # Providers of instance types no step asks for any more: detached here, so the sweep can delete them.
        stale = [p for p in current if p not in providers and ("capacity_provider", p) in self.owned]
        if not missing and not stale:
            return []
        changes = ([f"run tasks on {', '.join(missing)}"] if missing else []) + (
            [f"stop using {', '.join(stale)}"] if stale else [])
        # The call replaces the cluster's providers and default strategy: both are kept as they are.
        return [self._call(cluster, "update", "ecs", "put_cluster_capacity_providers",
                           f"let ECS cluster {cluster.name} {' and '.join(changes)}", cluster=cluster.name,
                           capacityProviders=[p for p in current if p not in stale] + missing,
                           defaultCapacityProviderStrategy=active[0].get("defaultCapacityProviderStrategy") or [])]

    def _task_definition(self, task: m.TaskDefinition, model: m.PipelineModel) -> list[Call]:
        found = self.reader.read("ecs", "describe_task_definition", ("ClientException",),
                                 taskDefinition=task.family, include=["TAGS"])
        tags = {t["key"]: t["value"] for t in (found or {}).get("tags", [])}
        if found and found["taskDefinition"].get("status") == "ACTIVE" and tags.get(m.SPEC_TAG_KEY) == task.spec_hash:
            return []
        revision = "new revision of " if found else ""
        params = resolve(dict(task.registration), self.queue_urls)
        params["tags"] = _tag_list({**task.tags, m.SPEC_TAG_KEY: task.spec_hash}, "key", "value")
        storage = params.get("ephemeralStorage", {}).get("sizeInGiB")
        details = [f"{params['cpu']} CPU units", f"{params['memory']} MiB"] + (
            [f"{storage} GiB of storage"] if storage else []) + [params["containerDefinitions"][0]["image"]]
        sizing = (f"; {task.placement}" if task.placement else "") + (f"; {task.sizing}" if task.sizing else "")
        return [Call("ecs", "register_task_definition", params,
                     f"register {revision}task definition {task.family} ({', '.join(details)}{sizing})",
                     task.kind, task.key, "create")]

    def _function(self, function: m.Function, model: m.PipelineModel) -> list[Call]:
        found = self.reader.read("lambda", "get_function", NOT_FOUND, FunctionName=function.name)
        environment = resolve(dict(function.environment), self.queue_urls)
        configuration = {"Role": function.role_arn, "Handler": launcher_package.HANDLER, "Runtime": launcher_package.RUNTIME,
                         "Timeout": launcher_package.TIMEOUT_SECONDS, "MemorySize": launcher_package.MEMORY_MIB,
                         "Environment": {"Variables": environment}}
        retry = LAMBDA_SETTLING
        if found is None:
            return [Call("lambda", "create_function",
                         {"FunctionName": function.name, "Code": {"ZipFile": function.code},
                          "Tags": dict(function.tags), **configuration},
                         f"create launcher Lambda {function.name} ({launcher_package.RUNTIME})",
                         function.kind, function.key, "create", retry_on=retry)] + self._concurrency(function, None)
        calls = self._concurrency(function, found.get("Concurrency", {}).get("ReservedConcurrentExecutions"))
        current = found["Configuration"]
        if current.get("CodeSha256") != function.code_sha256:
            calls.append(Call("lambda", "update_function_code", {"FunctionName": function.name, "ZipFile": function.code},
                              f"update the code of launcher Lambda {function.name}", function.kind, function.key,
                              "update", retry_on=retry))
        current_environment = (current.get("Environment") or {}).get("Variables", {})
        if (any(current.get(k) != v for k, v in configuration.items() if k != "Environment")
                or current_environment != environment):
            calls.append(Call("lambda", "update_function_configuration",
                              {"FunctionName": function.name, **configuration},
                              f"update the configuration of launcher Lambda {function.name}", function.kind,
                              function.key, "update", retry_on=retry))
        return calls

    def _concurrency(self, function: m.Function, reserved: int | None) -> list[Call]:
        if reserved == m.LAUNCHER_RESERVED_CONCURRENCY:
            return []
        if not self._unreserved_read:
            settings = self.reader.read("lambda", "get_account_settings", ("404",))
            self._unreserved = (settings or {}).get("AccountLimit", {}).get("UnreservedConcurrentExecutions")
            self._unreserved_read = True
        needed = m.LAUNCHER_RESERVED_CONCURRENCY - (reserved or 0)
        if self._unreserved is not None:
            # Every reservation, this plan's included, comes out of the unreserved pool, which
            # AWS keeps at MIN_UNRESERVED_EXECUTIONS or more.
            if self._unreserved - needed < MIN_UNRESERVED_EXECUTIONS:
                note = (f"this account has {self._unreserved} unreserved Lambda executions left, too few to reserve "
                        f"one per launcher (AWS keeps {MIN_UNRESERVED_EXECUTIONS}): such launchers run unreserved, so "
                        "uploads that arrive together may start a few more tasks than files, never fewer")
                if note not in self.notes:
                    self.notes.append(note)
                return []
            self._unreserved -= needed
        return [Call("lambda", "put_function_concurrency",
                     {"FunctionName": function.name, "ReservedConcurrentExecutions": m.LAUNCHER_RESERVED_CONCURRENCY},
                     f"run one launch of {function.name} at a time (so uploads arriving together never start "
                     "more tasks than files)", function.kind, function.key, "update",
                     retry_on=(Transient("ResourceConflictException"),))]

    def _permission(self, permission: m.Permission, model: m.PipelineModel) -> list[Call]:
        statement = self.reader.policy_statements(permission.function).get(permission.sid)
        if statement and _permission_matches(statement, permission):
            return []
        calls = []
        if statement:
            calls.append(self._call(permission, "update", "lambda", "remove_permission",
                                    f"replace permission {permission.sid} of {permission.function}",
                                    FunctionName=permission.function, StatementId=permission.sid))
        calls.append(self._call(permission, "create", "lambda", "add_permission",
                                f"let {permission.principal} invoke {permission.function} from {permission.source_arn}",
                                FunctionName=permission.function, StatementId=permission.sid,
                                Action="lambda:InvokeFunction", Principal=permission.principal,
                                SourceArn=permission.source_arn, SourceAccount=permission.source_account))
        return calls

    def _notification(self, notification: m.Notification, model: m.PipelineModel) -> list[Call]:
        configuration = self.reader.notification_configuration(notification.bucket)
        entries = configuration.get("LambdaFunctionConfigurations", [])
        mine = [e for e in entries if e.get("Id") == notification.id]
        if mine and _normal_entry(mine[0]) == _normal_entry(notification.entry()):
            return []
        _refuse_overlap(notification, configuration, model)
        # Merged: every other entry of the bucket is kept as it is.
        others = [e for e in entries if e.get("Id") != notification.id]
        merged = {**configuration, "LambdaFunctionConfigurations": others + [notification.entry()]}
        return [self._call(notification, "create", "s3", "put_bucket_notification_configuration",
                           f"notify {notification.function_arn.rsplit(':', 1)[-1]} of new objects in "
                           f"{notification.bucket} (keeping {_count_entries(configuration) - len(mine)} other "
                           "notification(s))", Bucket=notification.bucket, NotificationConfiguration=merged)]

    def _bucket_events(self, events: m.BucketEvents, model: m.PipelineModel) -> list[Call]:
        configuration = self.reader.notification_configuration(events.bucket)
        if "EventBridgeConfiguration" in configuration:
            return []
        # Merged: the bucket keeps every notification it has.
        merged = {**configuration, "EventBridgeConfiguration": {}}
        return [self._call(events, "create", "s3", "put_bucket_notification_configuration",
                           f"send the events of bucket {events.bucket} to EventBridge (several steps read it; keeping "
                           f"{_count_entries(configuration)} notification(s))",
                           Bucket=events.bucket, NotificationConfiguration=merged)]

    def _rule(self, rule: m.Rule, model: m.PipelineModel) -> list[Call]:
        found = self.reader.read("events", "describe_rule", NOT_FOUND, Name=rule.name)
        calls = []
        if rule.schedule:
            trigger = {"ScheduleExpression": rule.schedule,
                       "Description": "yunpipe: re-run the launcher so waiting messages get a worker"}
            what = f"run the launcher {rule.schedule} to top up workers"
        else:
            trigger = {"EventPattern": rule.pattern, "Description": "yunpipe: run the launcher on new objects"}
            what = f"run the launcher on new objects in {json.loads(rule.pattern)['detail']['bucket']['name'][0]}"
        if found is None:
            calls.append(self._call(rule, "create", "events", "put_rule", f"create rule {rule.name}: {what}",
                                    Name=rule.name, State="ENABLED", **trigger, Tags=_tag_list(rule.tags)))
        elif (found.get("ScheduleExpression", "") != rule.schedule or found.get("State") != "ENABLED"
              or json.loads(found.get("EventPattern") or "null") != json.loads(rule.pattern or "null")):
            calls.append(self._call(rule, "update", "events", "put_rule", f"update rule {rule.name}",
                                    Name=rule.name, State="ENABLED", **trigger))
        targets = self.reader.pages("events", "list_targets_by_rule", "Targets", NOT_FOUND, Rule=rule.name)
        if not any(t["Id"] == rule.target_id and t["Arn"] == rule.function_arn for t in targets):
            calls.append(self._call(rule, "update", "events", "put_targets", f"aim rule {rule.name} at the launcher",
                                    Rule=rule.name, Targets=[{"Id": rule.target_id, "Arn": rule.function_arn}]))
        return calls


def _same_attribute(name: str, current: str | None, desired: str) -> bool:
    if current is None:
        return False
    if name == "RedrivePolicy":
        return {k: str(v) for k, v in json.loads(current).items()} == {k: str(v) for k, v in json.loads(desired).items()}
    return current.lower() == desired.lower()


def _permission_matches(statement: dict, permission: m.Permission) -> bool:
    condition = statement.get("Condition", {})
    principal = statement.get("Principal", {})
    principal = principal.get("Service") if isinstance(principal, dict) else principal
    return (principal == permission.principal
            and condition.get("ArnLike", {}).get("AWS:SourceArn") == permission.source_arn
            and condition.get("StringEquals", {}).get("AWS:SourceAccount") == permission.source_account)


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


def _refuse_overlap(notification: m.Notification, configuration: dict, model: m.PipelineModel) -> None:
    """S3 rejects a configuration with overlapping entries ("Configuration is ambiguously
    defined"); found while planning, it is bad input and nothing has been created yet."""
    wanted = notification.entry()
    for kind in ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations"):
        for entry in configuration.get(kind, []):
            if entry.get("Id") != notification.id and overlap(wanted, entry):
                prefix, suffix = _key_filter(entry)
                raise InputError(model.source, "filter",
                                 f"expected a prefix/suffix that does not overlap notification '{entry.get('Id')}' "
                                 f"already on bucket {notification.bucket} (events {', '.join(entry.get('Events', []))}, "
                                 f"prefix '{prefix}', suffix '{suffix}'): S3 refuses two notifications of the same "
                                 "event whose prefixes and suffixes overlap")


def _count_entries(configuration: dict) -> int:
    return sum(len(v) for v in configuration.values() if isinstance(v, list))
