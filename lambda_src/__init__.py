"""Makes lambda_src/ the package yunpipe.lambda_src (setup.py), so the host can import and zip the launcher."""
