"""Foreground process of a local cloud: ``python -m yunpipe.commands.daemon --port N [--lambda docker]``.

``yunpipe local up`` runs it directly, or through ``cloud.start_detached`` for ``--detach``.
It serves until SIGINT/SIGTERM, then removes its containers and its state file.

API:
    main(argv=None) -> int
"""
from __future__ import annotations

import argparse
import logging

from yunpipe.local.cloud import LAMBDA_MODES, LocalCloud
from yunpipe.local.server import DEFAULT_PORT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yunpipe.commands.daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--region", action="append", dest="regions", help="region to serve (repeatable)")
    parser.add_argument(
        "--schedule-speedup", type=float, default=1.0, help="divide every rate() schedule by this factor"
    )
    parser.add_argument("--lambda-workers", type=int, default=4, help="launcher invocations run at once")
    parser.add_argument("--lambda", dest="lambda_mode", choices=LAMBDA_MODES, default="host",
                        help="run Lambda functions on the host or in moto's Docker Lambda")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cloud = LocalCloud(
        port=args.port,
        regions=args.regions,
        schedule_speedup=args.schedule_speedup,
        lambda_workers=args.lambda_workers,
        lambda_mode=args.lambda_mode,
    )
    endpoint = cloud.start()
    logging.getLogger(__name__).info("local cloud serving at %s", endpoint)
    cloud.run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
