"""cost and prices: what a pipeline's runs cost, and the price table it is worked out with."""
import argparse
import json

from yunpipe.aws.reader import Reader
from yunpipe.commands.common import aws_options
from yunpipe.engine.state import require_summary
from yunpipe.operations import cost, prices
from yunpipe.operations.reach import reach


def run_cost(args: argparse.Namespace) -> int:
    summary = require_summary(args.pipeline)
    result = cost.pipeline_cost(Reader(reach(aws_options(args), args.pipeline, summary)), summary, args.run)
    print(json.dumps(result.to_document(), indent=2) if args.json else cost.render(result))
    return 0


def run_prices(args: argparse.Namespace) -> int:
    table, where = prices.load()
    if args.refresh:
        regions = [prices.valid_region(args.region)] if args.region else list(table["regions"])
        aws = prices.open_pricing(args.profile, args.endpoint_url)
        # A region is some 25 GetProducts calls (one per EC2 type): say where it is.
        for region in regions:
            print(f"reading {region}'s prices ...", flush=True)
            table, lacking = prices.refresh(aws, table, [region])
            if lacking[region]:
                print(f"{region}: the Price List API had no {', '.join(lacking[region])}; kept as they were")
        where = str(prices.save(table))
        print(f"Refreshed {', '.join(regions)} from the AWS Price List API into {where}")
    if args.region:
        prices.check_region(table, args.region)
    print(json.dumps(table, indent=2) if args.json else prices.render(table, where, args.region))
    return 0
