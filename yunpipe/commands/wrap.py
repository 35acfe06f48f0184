"""wrap and init: the algorithm developer's verbs (yunpipe.wrapper)."""
import argparse
from pathlib import Path

from yunpipe.aws.location import AwsOptions
from yunpipe.specs.package import PACKAGE_FILE
from yunpipe.wrapper.package import init_package
from yunpipe.wrapper.wrap import WrapOptions, wrap


def wrap_options(args: argparse.Namespace) -> WrapOptions:
    # wrap's --local is where the image goes (the local Docker or registry); its AWS flags are for -r ecr.
    where = AwsOptions(profile=args.profile, region=args.region, endpoint_url=args.endpoint_url)
    return WrapOptions(bool(args.describe), tuple(args.files or ()), bool(args.show), args.registry, args.user,
                       bool(args.dry_run), args.output_dir, bool(args.local), bool(args.yes), where)


def run_wrap(args: argparse.Namespace) -> int:
    return wrap(wrap_options(args))


def run_init(args: argparse.Namespace) -> int:
    target = Path(args.name)
    written = init_package(target, args.runtime)
    entry = written[1]
    print(f"created {target}/: {', '.join(written)}")
    print(f"edit {target / entry} and {target / PACKAGE_FILE}, then: wrap --local -y -f {target}/")
    return 0
