"""The wrapped image's entrypoint: run the runscript with yunpipe's boto3 on its path.

Copied next to runscript.py (/opt/yunpipe/). The boto3 folder goes on sys.path of this
process only; an environment variable such as PYTHONPATH would leak into the algorithm's
command, which the runscript starts with the task's environment, and shadow its own Python.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.path.insert(0, os.path.join(HERE, "site-packages"))
    # Imported, not run from its path: the import loads the bytecode compiled into the image,
    # where runpy.run_path would compile the runscript anew in every task.
    import runscript

    sys.exit(runscript.main())
