"""The deploy engine: a workflow in, the pipeline's AWS resources made to match it.

Stages, each a module of its own:

1. compile  (compiler.py; instances.py: the EC2 capacity; sizing.py; policies.py: the IAM
   documents; network.py: what the target's subnets reach, read with the target, and each
   step's public IP): the resolved workflow and its Target (target.py) become a PipelineModel
   (model.py) of frozen resource dataclasses, with no AWS call; graph.py lays the steps out
   on buckets.
2. plan     (planner.py): each desired resource is read and compared by its kind, which returns
   the calls that close the gap; a Plan (plan.py) is data, a tuple of Calls.
3. apply    (executor.py): the calls run in order, each recorded in the pipeline's state
   (state.py) as it succeeds, so a stopped deploy resumes or cleans up.
4. sweep    (sweeper.py): what the state or the `yunpipe:pipeline` tag names and the model no
   longer wants is deleted by its kind, in SWEEP_ORDER (clean-up sweeps everything).

Kinds of resource, in creation order (kinds/__init__.py, KINDS): service_linked_role, bucket,
log_group, queue, parameter, role, instance_profile, launch_template, auto_scaling_group,
capacity_provider, cluster, task_definition, function, permission, notification, bucket_events,
rule. The sweep goes in the reverse order, except that Auto Scaling groups go just before the
cluster; service-linked roles are the account's and are never recorded or swept.

Adding a kind: write kinds/<kind>.py with its frozen dataclass (a `kind` class attribute and
a `key`) and a subclass of kinds.base.Kind (`plan`, `sweep`, and where the tagging API does not
list it, `arn_pattern` or `discover`) with a `KIND` instance; add one line to KINDS at its place
in the order; let the compiler build it and PipelineModel.resources() yield it in that order.
Later capabilities of every kind (its CloudFormation rendering, a check of the account before
a deploy) belong in the same place: a further method of Kind with a default, overridden in the
kind's module.

Export (cloudformation.py): the same PipelineModel as a CloudFormation template; each kind's
`cloudformation(resource, template)` renders its resources, given a Template (template.py) of
logical ids, references, parameters, files and notes on what CloudFormation cannot say.
"""
