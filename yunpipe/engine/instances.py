"""A pipeline's EC2 capacity, compiled with no AWS call: the instance role and profile, one
InstanceGroup (launch template, Auto Scaling group, capacity provider) per instance type the
steps ask for, the account's service-linked roles they need, and the check of each step
against its type where the pipeline goes (what target.resolve_instance_offers read)."""
import base64
from collections.abc import Mapping
from typing import Any

from yunpipe.engine.kinds.auto_scaling_group import AutoScalingGroup
from yunpipe.engine.kinds.capacity_provider import CapacityProvider
from yunpipe.engine.kinds.instance_profile import InstanceProfile
from yunpipe.engine.kinds.launch_template import LaunchTemplate
from yunpipe.engine.kinds.role import Role
from yunpipe.engine.kinds.service_linked_role import ServiceLinkedRole
from yunpipe.engine.model import ROLE_PATH, InstanceGroup, resource_name
from yunpipe.engine.policies import render_policy
from yunpipe.engine.target import InstanceOffer, Target
from yunpipe.errors import InputError
from yunpipe.resolve import ResolvedWorkflow

# The public SSM parameters naming the current ECS-optimized AMIs (x86-64): with the NVIDIA
# driver for GPU steps, Amazon Linux 2023 otherwise. Launch templates refer to them
# (resolve:ssm:), so each new instance boots the AMI that is current when it starts.
ECS_AMI_PARAMETERS = {
    True: "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id",
    False: "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
}


def service_linked_roles(spot: bool, instances: bool) -> tuple[ServiceLinkedRole, ...]:
    """The account's service-linked roles the pipeline needs: ECS's for any capacity provider
    (Fargate Spot or EC2), Auto Scaling's for EC2 instances. A fresh account has neither."""
    roles = []
    if spot or instances:
        roles.append(ServiceLinkedRole("ecs.amazonaws.com", "AWSServiceRoleForECS"))
    if instances:
        roles.append(ServiceLinkedRole("autoscaling.amazonaws.com", "AWSServiceRoleForAutoScaling"))
    return tuple(roles)


def capacity_provider_name(pipeline: str, instance_type: str) -> str:
    """The capacity provider (and its launch template and Auto Scaling group) of one instance type."""
    return resource_name("ecs", pipeline, "ec2", instance_type)


def instances(workflow: ResolvedWorkflow, target: Target, tags: Mapping[str, str], cluster: str,
              offers: Mapping[str, InstanceOffer]) -> tuple[tuple[Role, ...], tuple[InstanceProfile, ...],
                                                            tuple[InstanceGroup, ...]]:
    """The instance role and profile and one InstanceGroup per instance type the steps ask for
    (none at all when every step runs on Fargate)."""
    pipeline = workflow.spec.name
    types = sorted({step.instance_type for step in workflow.steps if step.instance_type})
    if not types:
        return (), (), ()
    check_instances(workflow, target, offers)
    role_name = resource_name("role", pipeline, "instance", "role")
    role = Role(role_name, target.arn("iam", f"role{ROLE_PATH}{role_name}", regional=False),
                render_policy("trust", service="ec2.amazonaws.com"),
                render_policy("instance", cluster_arn=target.arn("ecs", f"cluster/{cluster}"),
                              container_instances_arn=target.arn("ecs", f"container-instance/{cluster}/*")),
                f"yunpipe {pipeline}: ECS container instances", tags)
    profile = InstanceProfile(role_name, target.arn("iam", f"instance-profile{ROLE_PATH}{role_name}", regional=False),
                              role_name, tags)
    # The ECS agent joins the pipeline's cluster.
    user_data = base64.b64encode(f"#!/bin/bash\necho ECS_CLUSTER={cluster} >> /etc/ecs/ecs.config\n".encode()).decode()
    groups = []
    for instance_type in types:
        steps = [step for step in workflow.steps if step.instance_type == instance_type]
        gpu = any(step.gpu for step in steps)
        name = capacity_provider_name(pipeline, instance_type)
        data: dict[str, Any] = {
            "ImageId": f"resolve:ssm:{ECS_AMI_PARAMETERS[gpu]}",
            "InstanceType": instance_type,
            "IamInstanceProfile": {"Name": profile.name},
            "UserData": user_data,
            # IMDSv2 only, one hop: the host reaches it, task containers (a hop further) do not,
            # so tasks get their task role's credentials and never the instance role's.
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        }
        if target.security_groups:
            data["SecurityGroupIds"] = list(target.security_groups)
        template = LaunchTemplate(resource_name("launch_template", pipeline, "ec2", instance_type), data, tags)
        # Each task needs at most one instance: the steps' caps bound the instances.
        # Only the subnets whose Availability Zone offers the type: launches elsewhere would fail.
        subnets = offers[instance_type].subnets if instance_type in offers else target.subnets
        group = AutoScalingGroup(name, template.name, sum(step.concurrency for step in steps), subnets, tags)
        groups.append(InstanceGroup(instance_type, gpu, template, group, CapacityProvider(name, group.name, tags)))
    return (role,), (profile,), tuple(groups)


def _asker(workflow: ResolvedWorkflow, index: int, field: str) -> tuple[str, str]:
    """The file and field that set a step's instance_type, memory or gpu: the workflow's step when
    it sets it, else its algorithm (as resolve.resolve_instance blames them)."""
    step = workflow.steps[index]
    where = f"{workflow.spec.steps_field}[{index}]"
    if field == "memory":
        return (workflow.spec.source, f"{where}.memory") if step.spec.memory else (step.record.reference,
                                                                                   "memory.suggested")
    own = (step.spec.instance_type, step.spec.gpu) != (None, None) if field == "instance_type" \
        else step.spec.gpu is not None
    return (workflow.spec.source, f"{where}.{field}") if own else (step.record.reference, field)


def check_instances(workflow: ResolvedWorkflow, target: Target, offers: Mapping[str, InstanceOffer]) -> None:
    """Refuses the first step that does not fit its instance type (instance_findings)."""
    for finding in instance_findings(workflow, target, offers):
        raise finding


def instance_findings(workflow: ResolvedWorkflow, target: Target,
                      offers: Mapping[str, InstanceOffer]) -> list[InputError]:
    """Each step on EC2 that does not fit its instance type where the pipeline goes: the type is
    offered in an Availability Zone of the region that has one of the subnets
    (DescribeInstanceTypeOfferings), and one instance has the memory (less ECS's overhead) and the
    GPUs the task asks for (DescribeInstanceTypes); otherwise its tasks would never be placed.
    setup-pipe refuses the first; `yunpipe doctor` shows them all."""
    findings = []
    for index, step in enumerate(workflow.steps):
        offer = offers.get(step.instance_type)
        if offer is None:
            continue
        kind = step.instance_type
        if not offer.zones:
            findings.append(InputError(*_asker(workflow, index, "instance_type"),
                                       f"expected an instance type offered in {target.region}: no Availability Zone "
                                       f"of {target.region} offers {kind}"))
            continue
        if not offer.subnets:
            findings.append(InputError(*_asker(workflow, index, "instance_type"),
                                       f"expected an instance type offered in the Availability Zone of a subnet: "
                                       f"{kind} is offered in {', '.join(offer.zones)}, none of the subnets "
                                       f"{', '.join(target.subnets)}"))
        usable = offer.task_memory_mib
        if usable is not None and step.memory > usable:
            findings.append(InputError(*_asker(workflow, index, "memory"),
                                       f"expected at most {usable} MiB on {kind} ({offer.memory_mib} MiB installed, "
                                       f"less what the kernel and ECS agent keep), got {step.memory} MiB: pick a "
                                       "larger instance type"))
        if offer.gpus is not None and step.gpu > offer.gpus:
            findings.append(InputError(*_asker(workflow, index, "gpu"),
                                       f"expected at most {offer.gpus} GPU(s), what one {kind} has, got {step.gpu}"))
    return findings
