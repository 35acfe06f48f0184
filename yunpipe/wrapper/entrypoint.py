"""The wrapped image's entrypoint: run the runscript with yunpipe's boto3 on its path.

Copied next to runscript.py (/opt/yunpipe/). The boto3 folder goes on sys.path of this
process only; an environment variable such as PYTHONPATH would leak into the algorithm's
command, which the runscript starts with the task's environment, and shadow its own Python.
"""
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.path.insert(0, str(HERE / "site-packages"))
    runpy.run_path(str(HERE / "runscript.py"), run_name="__main__")
