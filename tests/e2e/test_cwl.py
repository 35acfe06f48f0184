"""End to end (issue 10): CWL CommandLineTools wrapped with `wrap -f tool.cwl`, set up as steps
and run on uploaded files, with their results checked.

The tools are those of tests/cwl/ (test_cwl.py checks their mapping); their DockerRequirement
names the checksum test image, which the `algorithms` fixture builds.
"""
from pathlib import Path

import pytest

from yunpipe.registry import AlgorithmRegistry

from .helpers import run_ok, write_inputs

pytestmark = pytest.mark.e2e

TOOLS = Path(__file__).resolve().parent.parent / "cwl"


@pytest.fixture(scope="module")
def cwl_tools(algorithms) -> dict[str, str]:
    """The CWL tools wrapped as a developer would: their name -> NAME@VERSION."""
    run_ok("wrap", "--local", "--yes", "-f", *(str(TOOLS / name) for name in ("replace.cwl", "sort.cwl", "wc-lines.cwl")))
    registry = AlgorithmRegistry()
    return {name: registry.get(name).reference for name in ("replace", "sort_lines", "wc-lines")}


def test_cwl_sed_then_sort_with_variables(pipeline, cwl_tools, tmp_path):
    chain = pipeline([{"name": cwl_tools["replace"], "variables": {"script": "s/cat/dog/"}},
                      {"name": cwl_tools["sort_lines"], "variables": {"numeric": True, "reverse": True}}],
                     idle_seconds=5)
    inputs = {
        "pets.txt": "2 cat\n10 cat and cat\n1 bird\n",
        "more/with space.txt": "3 catalogue\n30 cat\n",
    }
    run_ok("upload", "--local", chain.name, str(write_inputs(tmp_path / "in", inputs)))
    # sed replaces the first cat of each line; sort orders the lines by number, largest first.
    chain.wait_for_results({"pets.txt": b"10 dog and cat\n2 dog\n1 bird\n",
                            "more/with space.txt": b"30 dog\n3 dogalogue\n"}, timeout=150)


def test_cwl_stdin_stdout_tool_counts_lines(pipeline, cwl_tools, tmp_path):
    count = pipeline([{"name": cwl_tools["wc-lines"]}], idle_seconds=5)
    inputs = {"one.txt": "a single line\n", "three.txt": "one\ntwo\nthree\n", "empty.txt": ""}
    run_ok("upload", "--local", count.name, str(write_inputs(tmp_path / "in", inputs)))
    count.wait_for_results({"one.txt": b"1\n", "three.txt": b"3\n", "empty.txt": b"0\n"}, timeout=90)
