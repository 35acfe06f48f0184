"""Moving files in and out of a pipeline's buckets (read from its state): upload, results, download."""
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from yunpipe.aws.facade import Aws
from yunpipe.aws.location import AwsOptions
from yunpipe.aws.reader import Reader
from yunpipe.engine.state import find_step, require_summary
from yunpipe.errors import InputError, YunpipeError
from yunpipe.operations.opening import OpenRun, keep_sent, open_run
from yunpipe.operations.reach import reach
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


ProgressBar = Callable[[int, str], AbstractContextManager[Callable[[int], object]]]


@dataclass(frozen=True)
class UploadOptions:
    pipeline: str
    paths: tuple[str, ...]
    prefix: str = ""  # key prefix in the input bucket
    where: AwsOptions = field(default_factory=AwsOptions)


@dataclass(frozen=True)
class Uploaded:
    bucket: str
    count: int
    run: OpenRun | None  # None when the pipeline does not account for its work


def upload(options: UploadOptions, progress: ProgressBar) -> Uploaded:
    """Upload the files and folders to the pipeline's input bucket, as one run (its name on every
    file, in the `yunpipe-run` metadata the workers carry to the results).
    `progress(total_bytes, description)` gives the callback each transferred chunk's size goes to."""
    summary = require_summary(options.pipeline)
    pairs = files_to_upload(list(options.paths), options.prefix)
    aws = reach(options.where, options.pipeline, summary)
    bucket = summary.input_bucket
    # Asked before the progress bar starts: no AWS, or no bucket, is then one line and nothing else.
    if not Reader(aws).bucket_exists(bucket):
        raise YunpipeError(f"the input bucket {bucket} of pipeline {options.pipeline} does not exist; "
                           f"run setup-pipe again")
    opened = open_run(aws, summary, "upload", [{"bucket": bucket, "key": key} for _, key in pairs], "yunpipe upload")
    extra = {"Metadata": opened.metadata} if opened else {}
    s3 = aws.client("s3")
    sent: list[dict[str, str]] = []
    try:
        with progress(sum(f.stat().st_size for f, _ in pairs), f"upload to {bucket}") as update:
            for path, key in pairs:
                s3.upload_file(str(path), bucket, key, ExtraArgs=extra, Callback=update)
                sent.append({"bucket": bucket, "key": key})
    except BaseException:
        # Interrupted or failed: the run waits only for what arrived.
        keep_sent(aws, summary, opened, sent)
        raise
    return Uploaded(bucket, len(pairs), opened)


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


@dataclass(frozen=True)
class Results:
    """A pipeline's output bucket and its objects (list_objects_v2 entries), and the facade that found them."""
    aws: Aws
    bucket: str
    objects: tuple[dict, ...]

    def metadata(self, key: str) -> dict[str, str]:
        """The object's user metadata, where the worker stores its provenance."""
        return self.aws.call("s3", "head_object", Bucket=self.bucket, Key=key).get("Metadata", {})


def results(pipeline: str, where: AwsOptions, step: str | None = None) -> Results:
    """The pipeline's results, or one step's (an intermediate step's are the next one's input)."""
    summary = require_summary(pipeline)
    bucket = find_step(summary, step, "results").output_bucket if step else summary.output_bucket
    aws = reach(where, pipeline, summary)
    return Results(aws, bucket, tuple(aws.pages("s3", "list_objects_v2", "Contents", Bucket=bucket)))


def download(found: Results, folder: str, progress: ProgressBar) -> Path:
    """Every result into `folder` (keys as relative paths); the folder's absolute path."""
    root = Path(folder).resolve()
    s3 = found.aws.client("s3")
    with progress(sum(o["Size"] for o in found.objects), f"download {found.bucket}") as update:
        for obj in found.objects:
            target = (root / obj["Key"]).resolve()
            # A key such as "../x" must not write outside DIR.
            if not target.is_relative_to(root) or obj["Key"].endswith("/"):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(found.bucket, obj["Key"], str(target), Callback=update)
    return root
