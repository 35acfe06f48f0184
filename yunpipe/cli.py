"""Command-line entry points: the `yunpipe` umbrella and the 0.0.3 console scripts.

This module only parses arguments; each verb lives in yunpipe.commands, in the module named for
its group, and is imported when the verb runs, so `yunpipe --version` stays fast.
"""
import argparse
import difflib
import importlib
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from yunpipe import __version__
from yunpipe.errors import YunpipeError

# verb -> "module:function"; each function takes the parsed args and returns an exit status.
HANDLERS = {
    "wrap": "yunpipe.commands.wrap:run_wrap",
    "init": "yunpipe.commands.wrap:run_init",
    "algorithms-list": "yunpipe.commands.algorithms:run_algorithms_list",
    "algorithms-show": "yunpipe.commands.algorithms:run_algorithms_show",
    "algorithms-publish": "yunpipe.commands.algorithms:run_publish",
    "algorithms-pull": "yunpipe.commands.algorithms:run_pull",
    "algorithms-remote": "yunpipe.commands.algorithms:run_remote",
    "setup-pipe": "yunpipe.commands.deploy:run_setup_pipe",
    "clean-up": "yunpipe.commands.deploy:run_clean_up",
    "create-lambda-exec-role": "yunpipe.commands.deploy:run_create_lambda_exec_role",
    "show": "yunpipe.commands.deploy:run_show",
    "doctor": "yunpipe.commands.doctor:run_doctor",
    "export": "yunpipe.commands.export:run_export",
    "status": "yunpipe.commands.observe:run_status",
    "logs": "yunpipe.commands.observe:run_logs",
    "pipelines": "yunpipe.commands.observe:run_pipelines",
    "runs": "yunpipe.commands.runs:run_runs",
    "report": "yunpipe.commands.runs:run_report",
    "cost": "yunpipe.commands.accounting:run_cost",
    "prices": "yunpipe.commands.accounting:run_prices",
    "upload": "yunpipe.commands.transfer:run_upload",
    "results": "yunpipe.commands.transfer:run_results",
    "submit": "yunpipe.commands.backfill:run_submit",
    "retry": "yunpipe.commands.backfill:run_retry",
    "local-up": "yunpipe.commands.local:run_up",
    "local-down": "yunpipe.commands.local:run_down",
    "local-status": "yunpipe.commands.local:run_status",
    "demo": "yunpipe.commands.demo:run_demo",
    "ui": "yunpipe.commands.ui:run_ui",
    "try": "yunpipe.commands.tryout:run_try",
    "replay": "yunpipe.commands.tryout:run_replay",
    "calibrate": "yunpipe.commands.calibrate:run_calibrate",
}


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose refusals (exit 2) also say which verb or flag was probably meant;
    its subparsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        super().error(message + did_you_mean(self, message))


def did_you_mean(parser: argparse.ArgumentParser, message: str) -> str:
    """'; did you mean X?' for argparse's 'invalid choice' and 'unrecognized arguments', or ''."""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        typed, options = choice.group(1), re.findall(r"'([^']*)'", choice.group(2))
    else:
        unknown = re.search(r"unrecognized arguments: (\S+)", message)
        if not unknown:
            return ""
        typed, options = unknown.group(1).split("=")[0], sorted(_option_strings(parser))
    close = difflib.get_close_matches(typed, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every flag of the parser and of its verbs (an unrecognized flag is reported by the top parser)."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(option for option in action.option_strings if option.startswith("--"))
        for sub in (action.choices or {}).values() if isinstance(action, argparse._SubParsersAction) else ():
            found |= _option_strings(sub)
    return found


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where (default: the standard AWS credential chain)")
    group.add_argument("--profile", help="AWS profile to use")
    group.add_argument("--region", help="AWS region (default: the workflow's, then the profile's)")
    group.add_argument("--endpoint-url", help="AWS endpoint URL (also read from AWS_ENDPOINT_URL)")
    group.add_argument("--localstack", action="store_true", help="target a running LocalStack")
    group.add_argument("--local", action="store_true",
                       help="target yunpipe's local cloud (`yunpipe local up`; also YUNPIPE_LOCAL=1)")


def add_wrap_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--describe", action="store_true", help="use command line editor to describe your algorithm")
    parser.add_argument("-f", "--files", nargs="+", metavar="FILES",
                        help="JSON or YAML files describing your algorithms, or package folders (`yunpipe init`)")
    parser.add_argument("-s", "--show", action="store_true", help="show the described algorithm and ask before building")
    parser.add_argument("-r", "--registry", help="registry to push to: a host[:port], or 'ecr' (default: Docker Hub)")
    parser.add_argument("-u", "--user", help="registry namespace (your Docker Hub account, for example)")
    parser.add_argument("--dry-run", action="store_true", help="write the build context and stop")
    parser.add_argument("--output-dir", help="where --dry-run writes the build context")
    parser.add_argument("--local", action="store_true",
                        help="build into the local Docker daemon (or the local registry) for local pipelines")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--profile", help="AWS profile (for -r ecr)")
    parser.add_argument("--region", help="AWS region (for -r ecr)")
    parser.add_argument("--endpoint-url", help="AWS endpoint URL (for -r ecr)")


def add_setup_pipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--files", nargs="+", required=True, metavar="FILES", help="workflow JSON or YAML files")
    parser.add_argument("-uu", "--use_user_credential", action="store_true",
                        help="give tasks your own credentials (stored as SSM SecureString secrets, not recommended)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    add_aws_options(parser)


def add_clean_up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="pipelines to remove")
    parser.add_argument("--all", action="store_true", help="remove every pipeline yunpipe knows of")
    parser.add_argument("--purge", action="store_true", help="also empty and delete the buckets yunpipe created")
    parser.add_argument("--dry-run", action="store_true", help="print what would be removed and change nothing")
    add_aws_options(parser)


def add_create_role_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--files", nargs="+", required=True, metavar="FILES",
                        help="workflow files whose launcher roles to create or update")
    add_aws_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="yunpipe", description="Turn an algorithm container into an event-driven pipeline on AWS.")
    parser.add_argument("--version", action="version", version=f"yunpipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log AWS and Docker calls")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    add_wrap_arguments(verbs.add_parser("wrap", help="wrap an algorithm container and publish it"))
    init = verbs.add_parser("init", help="start a packaged algorithm: a folder with yunpipe.yaml, code and an example")
    init.add_argument("name", metavar="NAME", help="the folder to create; its last part names the algorithm")
    init.add_argument("--runtime", default="python", help="python (the default) or shell")
    algorithms = verbs.add_parser("algorithms", help="the local algorithm registry, and shared ones on S3").add_subparsers(
        dest="sub", required=True)
    algorithms.add_parser("list", help="every algorithm and its latest version")
    show = algorithms.add_parser("show", help="one algorithm version in full")
    show.add_argument("reference", metavar="NAME[@VERSION]")
    publish = algorithms.add_parser("publish", help="share algorithm versions: copy their records to a shared registry on S3")
    publish.add_argument("references", nargs="+", metavar="NAME[@VERSION]")
    publish.add_argument("--to", metavar="s3://BUCKET/PREFIX", help="the shared registry (default: the default remote)")
    add_aws_options(publish)
    pull = algorithms.add_parser("pull", help="copy published algorithm versions into the local registry")
    pull.add_argument("references", nargs="*", metavar="NAME[@VERSION]", help="NAME pulls its latest published version")
    pull.add_argument("--from", dest="source", metavar="s3://BUCKET/PREFIX",
                      help="the shared registry (default: the default remote)")
    pull.add_argument("--all", action="store_true", help="every version of every algorithm published there")
    add_aws_options(pull)
    remote = algorithms.add_parser("remote", help="show or set the default shared registry (YUNPIPE_REMOTE overrides it)")
    remote.add_argument("url", nargs="?", metavar="s3://BUCKET/PREFIX")
    add_setup_pipe_arguments(verbs.add_parser("setup-pipe", help="provision a pipeline from a workflow file"))
    add_clean_up_arguments(verbs.add_parser("clean-up", help="remove what setup-pipe created"))
    add_create_role_arguments(verbs.add_parser("create-lambda-exec-role", help="create or update the launcher role"))
    doctor = verbs.add_parser("doctor", help="check the account (and workflow files) before setup-pipe; reads only")
    doctor.add_argument("-f", "--files", nargs="+", metavar="FILES", help="workflow JSON or YAML files to check")
    add_aws_options(doctor)
    export = verbs.add_parser("export", help="a workflow, or a pipeline set up from this machine, as a "
                                                 "CloudFormation template (creates nothing)")
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("-f", "--file", metavar="FILE", help="workflow JSON or YAML file")
    source.add_argument("pipeline", nargs="?", metavar="PIPELINE",
                        help="a pipeline set up from this machine: the workflow it was last set up from")
    # One format so far, named as the issue asks, so a second one is a new choice rather than a new flag.
    export.add_argument("--format", choices=("cloudformation",), default="cloudformation",
                        help="cloudformation (the default): a template in YAML")
    export.add_argument("-o", "--output", metavar="FILE",
                        help="write the template to FILE and the launcher's code next to it (default: stdout)")
    export.add_argument("-uu", "--use_user_credential", action="store_true",
                        help="as setup-pipe -uu: tasks read your keys from SSM SecureString parameters, which the "
                             "template names and you create")
    add_aws_options(export)
    status = verbs.add_parser("status", help="queues, tasks and failures of a pipeline")
    status.add_argument("pipeline")
    status.add_argument("--all", action="store_true", help="every failure report (default: each step's newest 5)")
    status.add_argument("--json", action="store_true", help="print it as JSON")
    add_aws_options(status)
    listed = verbs.add_parser("runs", help="a pipeline's runs, open and settled, with their progress")
    listed.add_argument("pipeline")
    listed.add_argument("--json", action="store_true", help="print a JSON list")
    add_aws_options(listed)
    run_report = verbs.add_parser("report", help="what a run did, what failed and what it cost")
    run_report.add_argument("pipeline")
    run_report.add_argument("run", nargs="?", metavar="RUN", help="the run (default: the latest; `yunpipe runs` lists them)")
    shape = run_report.add_mutually_exclusive_group()
    shape.add_argument("--html", metavar="FILE",
                       help="write one self-contained HTML file with charts (opens offline)")
    shape.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    add_aws_options(run_report)
    logs = verbs.add_parser("logs", help="read a pipeline's task logs")
    logs.add_argument("pipeline")
    logs.add_argument("--step", help="only this step")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines")
    add_aws_options(logs)
    cost = verbs.add_parser("cost", help="what a pipeline's runs cost: by step, per file and per run, from the "
                                         "measured task-seconds")
    cost.add_argument("pipeline")
    cost.add_argument("--run", metavar="RUN", help="only this run (default: every run of the pipeline)")
    cost.add_argument("--json", action="store_true", help="print JSON")
    add_aws_options(cost)
    price_table = verbs.add_parser("prices", help="the price table cost uses: its date, source and figures")
    price_table.add_argument("--refresh", action="store_true",
                             help="read the figures anew from the AWS Price List API into ~/.yunpipe/prices.json")
    price_table.add_argument("--region", metavar="R",
                             help="only this region (default: Fargate of every region; with --refresh, all of them)")
    price_table.add_argument("--json", action="store_true", help="print the table as JSON")
    price_table.add_argument("--profile", help="AWS profile for --refresh")
    price_table.add_argument("--endpoint-url", help="Price List API endpoint for --refresh (default: AWS's, us-east-1)")
    upload = verbs.add_parser("upload", help="upload files or folders to a pipeline's input bucket")
    upload.add_argument("pipeline")
    upload.add_argument("paths", nargs="+", metavar="PATH")
    upload.add_argument("--prefix", default="", help="key prefix in the input bucket")
    add_aws_options(upload)
    results = verbs.add_parser("results", help="list or download a pipeline's results")
    results.add_argument("pipeline")
    results.add_argument("--step", help="an intermediate step's results (default: the pipeline's)")
    shown = results.add_mutually_exclusive_group()
    shown.add_argument("--download", metavar="DIR", help="download every result into DIR")
    shown.add_argument("--provenance", action="store_true",
                       help="with each result, the pipeline, step, algorithm, image, input(s) and attempt it came from")
    add_aws_options(results)
    submit = verbs.add_parser("submit", help="queue the objects already in a step's input bucket")
    submit.add_argument("pipeline")
    submit.add_argument("--prefix", default="", help="only the keys that start with this")
    submit.add_argument("--step", help="the step to queue them to (default: the first)")
    submit.add_argument("--gather", action="store_true",
                        help="queue one gather message for the objects under --prefix instead of one per object")
    submit.add_argument("--name", help="with --gather: the key of the gathered result (default: gather)")
    submit.add_argument("--force", action="store_true",
                        help="run them even where their results are there with matching provenance (else skipped)")
    add_aws_options(submit)
    retry = verbs.add_parser("retry", help="move dead-lettered messages back to their step's queue")
    retry.add_argument("pipeline")
    retry.add_argument("--step", help="only this step (default: every step)")
    retry.add_argument("--discard", action="store_true",
                       help="drop the dead letters instead of retrying them (their failure reports stay)")
    retry.add_argument("-y", "--yes", action="store_true", help="with --discard: do not ask for confirmation")
    add_aws_options(retry)
    tried = verbs.add_parser("try", help="run a wrapped algorithm on one file of this machine, in Docker, "
                                         "as a task would (before deploying anything)")
    tried.add_argument("algorithm", metavar="ALGORITHM[@VERSION]")
    tried.add_argument("file", metavar="FILE", help="the input file")
    tried.add_argument("--var", action="append", metavar="NAME=VALUE",
                       help="a variable of the algorithm (repeatable; the others take their defaults)")
    tried.add_argument("--output", metavar="PATH", help="where the result goes (default: FILE.out, beside FILE)")
    replayed = verbs.add_parser("replay", help="run a pipeline's failed job again on this machine, in Docker")
    replayed.add_argument("pipeline")
    replayed.add_argument("--report", metavar="KEY", help="a failure report's key, failures/PIPELINE/STEP/KEY/attempt-N.json (the dashboard's failure page gives it)")
    replayed.add_argument("--step", help="with --key: the step whose job to run again")
    replayed.add_argument("--key", help="with --step: the input's key in the step's input bucket")
    instead = replayed.add_mutually_exclusive_group()
    instead.add_argument("--shell", action="store_true",
                         help="open a shell in the job's container with its input staged instead (needs a terminal)")
    instead.add_argument("--output", metavar="PATH", help="keep an ok job's result at PATH (default: not kept)")
    add_aws_options(replayed)
    calibrate = verbs.add_parser("calibrate", help="run a sample on the local cloud at a few sizes; advise a step's "
                                                   "size, parallelism and files_per_task, and what N files would cost")
    calibrate.add_argument("algorithm", metavar="ALGORITHM[@VERSION]")
    calibrate.add_argument("--sample", required=True, metavar="DIR", help="a folder of sample input files (at most 100)")
    calibrate.add_argument("--files", type=int, default=1000, metavar="N",
                           help="the files to project the time and cost on AWS for (default 1000)")
    calibrate.add_argument("--region", help="the region whose Fargate prices to use (default: the workflow's, "
                                            "else us-east-1)")
    calibrate.add_argument("--write", metavar="WORKFLOW",
                           help="add the settings to the steps of this workflow file that run the algorithm")
    graph = verbs.add_parser("show", help="a pipeline's steps: what each reads, runs and writes")
    graph.add_argument("pipeline")
    graph.add_argument("--dot", action="store_true", help="print the graph in Graphviz DOT")
    pipelines = verbs.add_parser("pipelines", help="the pipelines set up from this machine")
    pipelines.add_argument("--json", action="store_true", help="print a JSON list")
    local = verbs.add_parser("local", help="the local cloud: the whole pipeline offline on this machine")
    local_verbs = local.add_subparsers(dest="sub", required=True)
    up = local_verbs.add_parser("up", help="start the embedded AWS and the local data plane")
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument("--port", type=int, default=4750, help="loopback port of the embedded AWS (default 4750)")
    # The modes of yunpipe.local.cloud.LAMBDA_MODES, spelled out: importing it here would slow every command.
    up.add_argument("--lambda", dest="lambda_mode", choices=("host", "docker"), default="host",
                    help="where Lambda functions run: on the host (default), or in moto's Docker Lambda "
                         "(higher fidelity; builds its images on first use)")
    down = local_verbs.add_parser("down", help="stop the local cloud and its containers (its pipelines go with it)")
    down.add_argument("-y", "--yes", action="store_true", help="stop it even when it holds pipelines, without asking")
    local_verbs.add_parser("status", help="is the local cloud running, and where")
    demo = verbs.add_parser("demo", help="the whole flow on the local cloud, from wrap to clean-up")
    demo.add_argument("--files", type=int, default=12, help="number of sample files (default 12)")
    demo.add_argument("--keep", action="store_true", help="skip the final clean-up")
    ui = verbs.add_parser("ui", help="a local web dashboard of the pipelines set up from this machine (127.0.0.1 only)")
    ui.add_argument("pipeline", nargs="?", metavar="PIPELINE", help="open on this pipeline's page")
    # The default of yunpipe.ui.server.DEFAULT_PORT, spelled out: importing it here would slow every command.
    ui.add_argument("--port", type=int, default=4760, help="loopback port (default 4760; 0: any free port)")
    ui.add_argument("--no-browser", action="store_true", help="print the URL (with its token) without opening a browser")
    return parser


def _handler_key(args: argparse.Namespace) -> str:
    sub = getattr(args, "sub", None)
    return f"{args.verb}-{sub}" if args.verb in ("algorithms", "local") else args.verb


def dispatch(key: str, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    module_name, function_name = HANDLERS[key].split(":")
    handler = getattr(importlib.import_module(module_name), function_name)
    try:
        status = handler(args) or 0
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        return _stdout_closed()
    except YunpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # The one place every verb's unhandled AWS failure (no credentials, no endpoint) becomes
        # one line; imported only on failure, so a command that never touches AWS never loads boto3.
        from yunpipe.aws.facade import explain
        explained = explain(exc)
        if explained is None and isinstance(exc, OSError) and exc.filename:
            # The machine's own trouble with a file (permissions, a full disk): the file and why.
            print(f"error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        if explained is None:
            raise
        print(f"error: {explained}", file=sys.stderr)
        return explained.exit_status


def _stdout_closed() -> int:
    """What `yunpipe logs p | head -1` ends in: the reader left, so the rest of the output goes
    nowhere (not into a traceback at exit), and the status is a shell's for a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(_handler_key(args), args)


def _script(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
            key: str) -> Callable[[list[str] | None], int]:
    def entry(argv: list[str] | None = None) -> int:
        parser = Parser(prog=prog, description=description)
        parser.add_argument("--version", action="version", version=f"yunpipe {__version__}")
        parser.add_argument("-v", "--verbose", action="store_true", help="log AWS and Docker calls")
        add_arguments(parser)
        return dispatch(key, parser.parse_args(argv))
    return entry


# The 0.0.3 console scripts, same flags as before.
wrap_main = _script("wrap", "A tool to wrap your containers", add_wrap_arguments, "wrap")
setup_pipe_main = _script("setup-pipe", "A tool to set up your pipeline", add_setup_pipe_arguments, "setup-pipe")
clean_up_main = _script("clean-up", "Remove the pipelines setup-pipe created", add_clean_up_arguments, "clean-up")
create_lambda_exec_role_main = _script("create-lambda-exec-role", "Create or update the launcher role of a pipeline",
                                       add_create_role_arguments, "create-lambda-exec-role")

if __name__ == "__main__":
    sys.exit(main())
