"""The three floors, read from the imports (ast, no import is run): commands on top (the only
code that sees argparse), the engine, operations, wrapper, specs and local cloud in the middle,
AWS access, the runtime contract and paths at the bottom; arrows only downward. The cloud
runtime (worker, launcher) depends on nothing of the host's but the contract."""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "yunpipe"

TOP = ("yunpipe.cli", "yunpipe.commands")
BOTTOM = ("yunpipe.aws", "yunpipe.runtime", "yunpipe.paths", "yunpipe.errors")
# Packages that ship data next to the code (Dockerfile and policy templates, examples).
DATA = ("yunpipe.templates", "yunpipe.examples")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _imports(path: Path) -> set[str]:
    """The absolute names of every module the file imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            # `from yunpipe.x import y` may import the module y.
            names.update(f"{base}.{alias.name}" for alias in node.names
                         if (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).with_suffix(".py").exists()
                         or (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).is_dir())
    return names


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _floor(module: str) -> int:
    if module == "yunpipe":  # the package's __init__: its version, nothing else
        return 0
    if _within(module, TOP):
        return 2
    if _within(module, BOTTOM):
        return 0
    return 1


def test_the_package_has_modules_on_every_floor():
    floors = {_floor(m) for m in MODULES}
    assert floors == {0, 1, 2}, floors


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_up_a_floor(module):
    upward = sorted(name for name in MODULES[module]
                    if name.startswith("yunpipe") and not _within(name, DATA) and _floor(name) > _floor(module))
    assert upward == [], f"{module} (floor {_floor(module)}) imports from a higher floor: {upward}"


def test_only_the_commands_see_argparse():
    seeing = sorted(m for m, names in MODULES.items() if "argparse" in names)
    assert seeing and all(_within(m, TOP) for m in seeing), seeing


def test_the_contract_is_standard_library_only():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    outside = sorted(n for n in MODULES["yunpipe.runtime.contract"] if n.split(".")[0] not in stdlib)
    assert outside == []


@pytest.mark.parametrize("part", ["yunpipe.runtime.worker", "yunpipe.runtime.launcher", "yunpipe.runtime.accounting"])
def test_the_cloud_runtime_needs_only_the_contract_and_botocore(part):
    """Accounting ships with both (it records and settles runs), so both may import it."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    allowed_third_party = {"botocore", "boto3", "s3transfer"}
    for module, names in MODULES.items():
        if not _within(module, (part,)):
            continue
        foreign = sorted(n for n in names if n.split(".")[0] not in stdlib | allowed_third_party
                         and not _within(n, (part, "yunpipe.runtime.contract", "yunpipe.runtime.accounting")))
        assert foreign == [], f"{module} imports {foreign}"


def test_specs_and_the_engine_import_neither_the_worker_nor_the_launcher():
    """They read the contract; the launcher's zip comes from launcher_package, which reads files."""
    for module, names in MODULES.items():
        if _within(module, ("yunpipe.specs", "yunpipe.engine")):
            assert not [n for n in names if _within(n, ("yunpipe.runtime.worker", "yunpipe.runtime.launcher"))], module


def test_boto3_is_imported_only_by_the_aws_door_and_the_cloud_runtime():
    importing = sorted(m for m, names in MODULES.items() if "boto3" in names or any(n.startswith("boto3.") for n in names))
    assert importing and all(_within(m, ("yunpipe.aws", "yunpipe.runtime")) for m in importing), importing


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_keeps_within_500_lines_unless_its_docstring_says_why(path):
    lines = len(path.read_text().splitlines())
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= 500 or "500 lines" in docstring, f"{path} has {lines} lines: split it, or say why it is one"
