"""upload and results: files in and out of a pipeline's buckets (yunpipe.operations.transfer)."""
import argparse

from yunpipe.commands.common import aws_options, progress_bar
from yunpipe.operations.opening import follow_lines
from yunpipe.operations.transfer import UploadOptions, download, provenance_lines, results, upload


def run_upload(args: argparse.Namespace) -> int:
    uploaded = upload(UploadOptions(args.pipeline, tuple(args.paths), args.prefix, aws_options(args)), progress_bar)
    print(f"Uploaded {uploaded.count} file(s) to s3://{uploaded.bucket}/{args.prefix}")
    for line in follow_lines(args.pipeline, uploaded.run):
        print(line)
    return 0


def run_results(args: argparse.Namespace) -> int:
    found = results(args.pipeline, aws_options(args), args.step)
    if args.provenance:
        for obj in found.objects:
            print("\n".join(provenance_lines(obj["Key"], found.metadata(obj["Key"]))))
        print(f"{len(found.objects)} result(s) in s3://{found.bucket}")
        return 0
    if not args.download:
        for obj in found.objects:
            print(f"{obj['Size']:>12}  {obj['Key']}")
        print(f"{len(found.objects)} result(s) in s3://{found.bucket}")
        return 0
    root = download(found, args.download, progress_bar)
    print(f"Downloaded {len(found.objects)} result(s) from s3://{found.bucket} to {root}")
    return 0
