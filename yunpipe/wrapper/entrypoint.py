"""The wrapped image's entrypoint: run the worker with yunpipe's boto3 on its path.

Copied to /opt/yunpipe/, next to lib/ (the worker as the package yunpipe.runtime.worker, with
the contract) and site-packages/ (boto3). Both folders go on sys.path of this process only; an
environment variable such as PYTHONPATH would leak into the algorithm's command, which the
worker starts with the task's environment, and shadow its own Python.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.path[:0] = [os.path.join(HERE, "lib"), os.path.join(HERE, "site-packages")]
    # Imported, not run from its path: the import loads the bytecode compiled into the image,
    # where runpy would compile the worker anew in every task.
    from yunpipe.runtime.worker.main import main

    sys.exit(main())
