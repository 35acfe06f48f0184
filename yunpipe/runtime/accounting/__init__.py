"""Accounting: what every job and task measured, the runs they belong to, and what they cost.

Runs in the cloud (shipped with the worker into every wrapped image and with the launcher into
its zip) and is read on the host, so it imports only the standard library (Python 3.7+) and
takes boto3 clients as arguments. The records' layout in the reports bucket is records.py.

records.py   the reports bucket's layout and the records' fields (the one home of both)
runs.py      a file's run: the one an upload or a submit opened, or the pipeline's open drop-run
settle.py    a run that has ended: detected once (a conditional write), summarised, announced
cost.py      the price table (prices.json) and what measured task-seconds cost
"""
