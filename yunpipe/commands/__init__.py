"""The top floor: one module per group of verbs, the only code (with yunpipe.cli) that sees an
argparse Namespace. Each `run_*(args)` turns the flags into the frozen options of the middle
floor (yunpipe.operations, yunpipe.wrapper, yunpipe.remote, yunpipe.local), calls it, prints
what it returns and gives the exit status.

    wrap        wrap, init
    algorithms  algorithms list|show|publish|pull|remote
    deploy      setup-pipe, create-lambda-exec-role, clean-up, show
    export      export
    observe     status, logs, pipelines
    accounting  cost, prices
    transfer    upload, results
    backfill    submit, retry
    local       local up|down|status; daemon: the local cloud's own process (python -m)
    demo        demo
    calibrate   calibrate
    ui          ui (the dashboard: yunpipe.ui)
"""
