# Every target prepares the machine first (scripts/bootstrap.sh is idempotent and quick when done).
.PHONY: bootstrap test demo

bootstrap:
	scripts/bootstrap.sh

test: bootstrap
	.venv/bin/ruff check .
	.venv/bin/mypy yunpipe
	.venv/bin/pytest

demo: bootstrap
	.venv/bin/yunpipe demo
