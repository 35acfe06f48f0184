"""Makes templates/ the package yunpipe.templates (setup.py), where jinja2 and importlib.resources find it."""
