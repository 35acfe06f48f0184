"""`yunpipe local up|down|status`: start, stop and inspect the local cloud."""
import argparse
import json
import sys

from yunpipe.errors import InputError, YunpipeError
from yunpipe.local import cloud
from yunpipe.local.cloud import DockerUnavailable, LocalCloud
from yunpipe.local.lambda_images import LambdaImageError
from yunpipe.operations.listing import on_the_running_local_cloud


def run_up(args: argparse.Namespace) -> int:
    current = cloud.running_state()
    if current is not None:
        print(f"The local cloud already runs at {current['endpoint']} (pid {current['pid']}).")
        return 0
    if args.detach:
        try:
            current = cloud.start_detached(port=args.port, extra_args=("--lambda", args.lambda_mode))
        except (RuntimeError, TimeoutError) as exc:
            raise YunpipeError(str(exc)) from None
        print(f"The local cloud runs at {current['endpoint']} (pid {current['pid']}).")
        print("Use --local (or YUNPIPE_LOCAL=1) with any yunpipe command; `yunpipe local down` stops it.")
        return 0
    local_cloud = LocalCloud(port=args.port, lambda_mode=args.lambda_mode)
    try:
        endpoint = local_cloud.start()
    except DockerUnavailable as exc:
        raise YunpipeError(f"{exc}; install and start Docker (scripts/bootstrap.sh does both)") from None
    except LambdaImageError as exc:
        raise YunpipeError(str(exc)) from None
    print(f"The local cloud runs at {endpoint}; Ctrl-C stops it.")
    local_cloud.run_forever()
    return 0


def run_down(args: argparse.Namespace) -> int:
    held = on_the_running_local_cloud() if cloud.running_state() else []
    if held and not args.yes:
        names = ", ".join(p.name for p in held)
        warning = (f"The local cloud holds {len(held)} pipeline(s): {names}. It keeps nothing when it stops: their "
                   "buckets, files, queues and functions are deleted with it (yunpipe keeps their records and says "
                   "so when you use them).")
        if not sys.stdin.isatty():
            raise InputError("local down", "--yes", f"expected --yes to stop it anyway. {warning}")
        print(warning)
        if input("Stop it and throw them away? [y/N] ").strip().lower() not in ("y", "yes"):
            print("The local cloud keeps running.")
            return 1
    if cloud.stop_running():
        print("The local cloud stopped; its containers are removed.")
    else:
        print("No local cloud is running.")
    return 0


def run_status(args: argparse.Namespace) -> int:
    current = cloud.running_state()
    if current is None:
        print("No local cloud is running. Start one with `yunpipe local up --detach`.")
        return 1
    print(json.dumps(current, indent=2))
    return 0
