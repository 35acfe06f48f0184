"""Where yunpipe keeps its state: ~/.yunpipe, or $YUNPIPE_HOME."""
import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("YUNPIPE_HOME") or Path.home() / ".yunpipe")


def algorithms_dir() -> Path:
    return home() / "algorithms"


def pipelines_dir() -> Path:
    return home() / "pipelines"


def local_dir() -> Path:
    return home() / "local"


def config_file() -> Path:
    return home() / "config.yaml"
