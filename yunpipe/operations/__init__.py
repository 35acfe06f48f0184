"""What yunpipe does with a deployed pipeline, typed (no command-line arguments): deploy and clean-up
(deploy), status, logs, submit and retry (backfill), upload and results (transfer), the
pipelines of this machine (listing), a pipeline as a CloudFormation template (export). The commands (yunpipe.commands) turn flags into the
frozen options these take and print what they return.
"""
