"""The launcher's logger: one for every module, its records the function's CloudWatch Logs."""
from __future__ import annotations

import logging

LOG = logging.getLogger("yunpipe.launcher")
# The Lambda runtime leaves the root logger at WARNING; the summary line is INFO.
LOG.setLevel(logging.INFO)
