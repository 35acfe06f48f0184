"""The code that runs in the cloud, around a small contract.

contract.py         the defaults and the environments the host, the worker and the launcher share
worker/             the worker loop inside every wrapped image (shipped whole: yunpipe.wrapper.context)
launcher/           the launcher Lambda (zipped by launcher_package.py)
accounting/         records of jobs, tasks and runs, settling, cost (shipped with both)
launcher_package.py the launcher's zip and Lambda settings (host-side only)

The worker and the launcher import only the contract and their own modules; each ships with
empty stand-ins for this file and yunpipe/__init__.py, so nothing here may be needed by them.
"""
