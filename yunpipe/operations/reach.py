"""The facade for a deployed pipeline: where its record says it lives (yunpipe.aws.location)."""
from yunpipe.aws.facade import Aws
from yunpipe.aws.location import AwsOptions, of_pipeline, open_with_region
from yunpipe.engine.state import PipelineSummary


def reach(where: AwsOptions, pipeline: str, summary: PipelineSummary | None) -> Aws:
    """Where the pipeline lives; the command's flags for a summary recorded before yunpipe kept
    the location, or for no summary at all."""
    record = summary.location if summary else None
    return open_with_region(of_pipeline(where, pipeline, record, summary.region if summary else None))
