"""yunpipe's worker: the loop inside a wrapped image.

It drains the step's SQS queue: receive -> download the input object(s) -> run the algorithm's
command -> upload the result(s) -> delete the message, and exits once the queue has stayed
empty for a while. See docs/runtime-contract.md for the environment, message and report
formats it implements.

This folder is shipped whole into Docker images, next to the contract it reads
(/opt/yunpipe/lib/yunpipe/runtime/), and run by /opt/yunpipe/entrypoint.py. So it imports only
the standard library, botocore (s3transfer for large objects), ..contract and its own modules
(relative imports), and must run on Python 3.7+ (the wrapped image runs it on its own python3;
wrap gives it a boto3 set that supports that python3).

Its modules, each with one job, from the top down:
    main        the entry point: configuration, signals, clients, the loop, the exit status
    loop        run_worker: receive while a pool of jobs works, exit once the queue stays empty
    lease       a message's lease: the visibility heartbeat, then delete or release
    job         one message: stage, run, upload with provenance, or report the failure
    once        one job from a file on this machine, no AWS (yunpipe try, yunpipe replay)
    staging     a job's input(s) on disk: one object, a join, a gather
    provenance  the S3 user metadata of the results
    transfers   one object to or from S3: a single request or s3transfer
    clients     the SQS and S3 clients
    locks       the local paths of the jobs running at once
    process     running the command: process group, timeout, stop, reaping
    command     the command's argv: placeholders replaced and quoted
    paths       object keys -> local paths, result files -> result keys
    message     the queue message (Job, Source) and JobFailure
    algorithm   the algorithm description and the command's environment
"""
