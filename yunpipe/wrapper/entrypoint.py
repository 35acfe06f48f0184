"""The wrapped image's entrypoint: run the worker with yunpipe's boto3 on its path.

Copied to /opt/yunpipe/, next to lib/ (the worker as the package yunpipe.runtime.worker, with
the contract), site-packages/ (boto3) and patterns.marshal (the regular expressions the worker's
start compiles, recorded when the image was built: yunpipe.runtime.worker.patterns). Both
folders go on sys.path of this process only; an environment variable such as PYTHONPATH would
leak into the algorithm's command, which the worker starts with the task's environment, and
shadow its own Python.
"""
import gc
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    # The imports allocate thousands of objects and free few: collecting meanwhile only costs
    # a cold start time (CPU at 0.25 vCPU is scarce). What they made stays, so it is frozen out
    # of every later collection.
    gc.disable()
    sys.path[:0] = [os.path.join(HERE, "lib"), os.path.join(HERE, "site-packages")]
    from yunpipe.runtime.worker import patterns

    patterns.load(os.path.join(HERE, "patterns.marshal"))
    # Imported, not run from its path: the import loads the bytecode compiled into the image,
    # where runpy would compile the worker anew in every task.
    from yunpipe.runtime.worker.main import main

    gc.freeze()
    gc.enable()
    sys.exit(main())
