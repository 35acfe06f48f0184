"""yunpipe upload / results: move files in and out of a pipeline's buckets (read from its state)."""
from pathlib import Path
from urllib.parse import unquote

from tqdm import tqdm

from yunpipe.aws.reader import Reader
from yunpipe.aws.session import AwsOptions
from yunpipe.errors import InputError, YunpipeError
from yunpipe.pipeline.location import open_pipeline_aws
from yunpipe.engine.state import require_summary
from yunpipe.runtime.contract import PROVENANCE_FIELDS


def files_to_upload(paths: list[str], prefix: str = "") -> list[tuple[Path, str]]:
    """(file, key) pairs: a file keeps its name, a folder's files keep their relative paths."""
    pairs = []
    for index, raw in enumerate(paths):
        path = Path(raw)
        if path.is_file():
            pairs.append((path, prefix + path.name))
        elif path.is_dir():
            pairs.extend((f, prefix + f.relative_to(path).as_posix()) for f in sorted(path.rglob("*")) if f.is_file())
        else:
            raise InputError("upload", f"PATH[{index}]", f"expected an existing file or folder, got '{raw}'")
    return pairs


def run_upload(args) -> int:
    summary = require_summary(args.pipeline)
    pairs = files_to_upload(args.paths, args.prefix)
    aws = open_pipeline_aws(AwsOptions.from_args(args), args.pipeline, summary)
    bucket = summary.input_bucket
    # Asked before the progress bar starts: no AWS, or no bucket, is then one line and nothing else.
    if not Reader(aws).bucket_exists(bucket):
        raise YunpipeError(f"the input bucket {bucket} of pipeline {args.pipeline} does not exist; "
                           f"run setup-pipe again")
    s3 = aws.client("s3")
    with tqdm(total=sum(f.stat().st_size for f, _ in pairs), unit="B", unit_scale=True,
              desc=f"upload to {bucket}") as progress:
        for path, key in pairs:
            s3.upload_file(str(path), bucket, key, Callback=progress.update)
    print(f"Uploaded {len(pairs)} file(s) to s3://{bucket}/{args.prefix}")
    return 0


def provenance_lines(key: str, metadata: dict[str, str]) -> list[str]:
    """A result's key and, indented, the provenance the worker stored with it (in the contract's
    order, names without "yunpipe-", values percent-decoded)."""
    lines = [key]
    for name in PROVENANCE_FIELDS:
        if name in metadata:
            lines.append(f"    {name.removeprefix('yunpipe-')}: {unquote(metadata[name])}")
    if len(lines) == 1:
        lines.append("    (no provenance: not written by a yunpipe worker)")
    return lines


def run_results(args) -> int:
    summary = require_summary(args.pipeline)
    aws = open_pipeline_aws(AwsOptions.from_args(args), args.pipeline, summary)
    bucket = summary.output_bucket
    objects = list(aws.pages("s3", "list_objects_v2", "Contents", Bucket=bucket))
    if args.provenance:
        for obj in objects:
            metadata = aws.call("s3", "head_object", Bucket=bucket, Key=obj["Key"]).get("Metadata", {})
            print("\n".join(provenance_lines(obj["Key"], metadata)))
        print(f"{len(objects)} result(s) in s3://{bucket}")
        return 0
    if not args.download:
        for obj in objects:
            print(f"{obj['Size']:>12}  {obj['Key']}")
        print(f"{len(objects)} result(s) in s3://{bucket}")
        return 0
    root = Path(args.download).resolve()
    s3 = aws.client("s3")
    with tqdm(total=sum(o["Size"] for o in objects), unit="B", unit_scale=True, desc=f"download {bucket}") as progress:
        for obj in objects:
            target = (root / obj["Key"]).resolve()
            # A key such as "../x" must not write outside DIR.
            if not target.is_relative_to(root) or obj["Key"].endswith("/"):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target), Callback=progress.update)
    print(f"Downloaded {len(objects)} result(s) from s3://{bucket} to {root}")
    return 0
