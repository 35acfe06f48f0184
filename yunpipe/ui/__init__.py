"""`yunpipe ui`: a local web dashboard of the pipelines recorded on this machine (app.py: the
pages; pipelines.py, runs.py, files.py: what they read; pictures.py: the graph and the charts;
server.py: serving it on the loopback with a token)."""
