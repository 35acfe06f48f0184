"""What several commands share: the AWS flags as typed options, tqdm progress bars."""
import argparse
import contextlib
from collections.abc import Callable, Iterator

from tqdm import tqdm

from yunpipe.aws.location import AwsOptions


def aws_options(args: argparse.Namespace) -> AwsOptions:
    """The options of parsed command-line arguments; a command without some flag gets its default."""
    return AwsOptions(local=bool(getattr(args, "local", False)), localstack=bool(getattr(args, "localstack", False)),
                      profile=getattr(args, "profile", None), region=getattr(args, "region", None),
                      endpoint_url=getattr(args, "endpoint_url", None))


@contextlib.contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], object]]:
    """A byte progress bar; yields the callback each transferred chunk's size goes to."""
    with tqdm(total=total, unit="B", unit_scale=True, desc=description, disable=None) as progress:
        yield progress.update
