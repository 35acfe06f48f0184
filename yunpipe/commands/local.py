"""`yunpipe local up|down|status`: start, stop and inspect the local cloud."""
import argparse
import json

from yunpipe.errors import YunpipeError
from yunpipe.local import cloud
from yunpipe.local.cloud import DockerUnavailable, LocalCloud
from yunpipe.local.lambda_images import LambdaImageError


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
