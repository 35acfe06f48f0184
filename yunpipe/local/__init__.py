"""The local cloud: yunpipe's whole pipeline on one machine, offline, with no AWS account.

Modules, one job each:
    server       moto's server on 127.0.0.1, ECS tasks pinned RUNNING
    lambda_host  the launcher Lambda run on the host when moto reports an S3 notification
    lambda_retries   what Lambda does with a failed asynchronous invocation: tries, destination
    lambda_images    the images of moto's Docker Lambda (``--lambda docker``), built offline
    lambda_bootstrap their runtime's entry point (runs inside the image, not in yunpipe)
    scheduler    EventBridge rate() rules fired locally (moto never fires them)
    ecs_runner   ECS tasks run as Docker containers; exit code to stop_task
    log_pump     a container's output into its CloudWatch Logs stream, as awslogs copies it
    cloud        LocalCloud composing the above; start_detached / stop_running / running_state
    (announcement: <yunpipe home>/local/cloud.json, how other commands find the endpoint, is
                 yunpipe.aws.announcement: the local cloud writes it, the Location reads it)
    clients      boto3 clients aimed at the emulator
    moto_patches every change yunpipe makes to moto: its answers corrected to AWS's, slow ones
                 made fast, and the hooks of the data plane above
    polling      the polling thread the ECS runner and the scheduler share
    faults       faults on purpose for chaos tests and benchmarks (killed workers, failing
                 launchers, an S3 outage), inert unless LocalCloud.inject_faults() arms them
    (its process, ``python -m yunpipe.commands.daemon --port N``, is in yunpipe.commands.daemon)
"""
