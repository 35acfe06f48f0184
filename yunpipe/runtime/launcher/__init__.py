"""yunpipe's launcher Lambda: queue each new S3 object for a step and start just enough workers.

One package serves every step; the step is chosen by environment variables
(docs/runtime-contract.md, "Launcher environment"; ..contract.LauncherConfig). Handler:
``yunpipe.runtime.launcher.handler.handler``. It takes S3 notifications, S3 events routed by
EventBridge and scheduled events (top-up, and the events Lambda could not deliver, drained from
the step's failed-events queue). A join step queues a key once every upstream
step's result for it exists; a gather step queues one job over a folder when its marker object
arrives.

Only the standard library, boto3 and ..contract are used, so the package runs unchanged on the
python3.12 Lambda runtime (its zip: ..launcher_package) and on the host in the local cloud.

Its modules, each with one job, from the top down:
    handler  the Lambda handler: queue the event's objects, then top up workers
    recovery the scheduled run: queue the objects of the events Lambda could not deliver
    joins    a join step's claims: queue a key once all its inputs exist
    scaling  the scaling policy: how many workers, when to look, the cap
    tasks    ECS: the step's running tasks, RunTask with capacity retries
    events   the event's new objects and the message bodies for them
    sending  SendMessageBatch with resends
    clients  the boto3 clients, reused across warm invocations
    log      the launcher's logger
"""
