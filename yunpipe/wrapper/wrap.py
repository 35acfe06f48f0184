"""Wrapping algorithms (`wrap`): check, build, publish and record each one, from typed options
(WrapOptions; yunpipe.commands.wrap makes them from the flags)."""
import ast
import json
import os
import posixpath
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yunpipe.aws.location import AwsOptions, resolve, wants_local
from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRecord, AlgorithmRegistry
from yunpipe.specs.algorithm import AlgorithmSpec, load_algorithm
from yunpipe.specs.loading import is_folder
from yunpipe.wrapper.context import SOURCE_LABEL, BaseImage, render_dockerfile, worker_path, write_build_context
from yunpipe.wrapper.describe import Prompter, describe_algorithm
from yunpipe.wrapper.package import Packaged, build_runtime_image, load_packaged, write_runtime_context

LOCAL_REPOSITORY = "yunpipe-local"


def local_registry() -> str:
    """The optional registry of the local cloud (Debian's docker-registry); overridable so
    tests can run their own."""
    return os.environ.get("YUNPIPE_LOCAL_REGISTRY", "127.0.0.1:5000")


@dataclass(frozen=True)
class Destination:
    """Where a wrapped image goes: the reference it is built or tagged as, and whether to push."""

    reference: str
    push: bool
    auth_config: dict | None = None


@dataclass(frozen=True)
class WrapOptions:
    """What wrap is asked: the algorithms (-d, or -f FILES), where they go, and how."""
    describe: bool = False  # describe one interactively
    files: tuple[str, ...] = ()  # algorithm files, CWL tools or package folders
    show: bool = False  # show the algorithm and ask before building
    registry: str | None = None  # a host[:port], or "ecr"; default: Docker Hub
    user: str | None = None  # registry namespace
    dry_run: bool = False
    output_dir: str | None = None
    local: bool = False  # into the local Docker daemon (or the local registry)
    yes: bool = False
    where: AwsOptions = field(default_factory=AwsOptions)  # for -r ecr


def _check_flags(args: WrapOptions) -> None:
    if not (args.describe or args.files):
        raise InputError("wrap", "-d/-f", "expected either -d (describe interactively) or -f FILES")
    if args.describe and args.files and (len(args.files) > 1 or is_folder(args.files[0]) or
                          Path(args.files[0]).suffix.lower() not in (".json", ".yaml", ".yml")):
        raise InputError("wrap", "-d -f", "expected one algorithm file (JSON or YAML) to start describing from")
    if args.output_dir and not args.dry_run:
        raise InputError("wrap", "--output-dir", "expected together with --dry-run")
    if args.registry == "ecr" and not args.local and wants_local(args.where):
        # moto's ECR hands out repository URIs on amazonaws.com and tokens no registry takes, so
        # a push there could only fail (or reach the real host); the local cloud pulls from this
        # machine's Docker or its registry instead.
        raise InputError("wrap", "-r", "expected --local for the local cloud (YUNPIPE_LOCAL=1): its images stay in "
                                       "this machine's Docker or go to its registry; -r ecr pushes to Amazon ECR")
    if not (args.dry_run or args.local or args.registry == "ecr" or args.user):
        raise InputError("wrap", "-u/--user", "expected the registry user to publish as (there is no default user), "
                                              "or --local, or -r ecr")


def load_algorithm_file(path: str) -> AlgorithmSpec:
    """An algorithm file (JSON or YAML), or a CWL CommandLineTool (`.cwl`, issue 10)."""
    if Path(path).suffix.lower() == ".cwl":
        from yunpipe.specs.cwl import load_cwl_algorithm
        return load_cwl_algorithm(path)
    return load_algorithm(path)


def destination(args: WrapOptions, spec: AlgorithmSpec, version: int) -> Destination:
    name = spec.name
    if args.local:
        from yunpipe.wrapper.images import registry_answers
        if registry_answers(local_registry()):
            return Destination(f"{local_registry()}/{LOCAL_REPOSITORY}/{name}:{version}", push=True)
        return Destination(f"{LOCAL_REPOSITORY}/{name}:{version}", push=False)
    if args.registry == "ecr":
        from yunpipe.aws import ecr
        client = ecr.ecr_client(resolve(args.where))
        uri = ecr.ensure_repository(client, f"{args.user}/{name}" if args.user else name)
        return Destination(f"{uri}:{version}", push=True, auth_config=ecr.docker_auth(client))
    # Docker Hub is the daemon's default registry, named by the bare user/name.
    prefix = f"{args.registry.rstrip('/')}/" if args.registry else ""
    return Destination(f"{prefix}{args.user}/{name}:{version}", push=True)


def runscript_summary(spec: AlgorithmSpec) -> str:
    doc = ast.get_docstring(ast.parse(worker_path().read_text())) or ""
    # The docstring's second paragraph says what the runscript does, the first only names it.
    paragraphs = doc.split("\n\n")
    about = paragraphs[min(1, len(paragraphs) - 1)].replace("\n", " ")
    stdin = " (and fed on its stdin)" if spec.input_adapter == "stdin" else ""
    stdout = "its stdout is the result" if spec.output_adapter == "stdout" else f"it writes $output in {spec.output_file_path}"
    return "\n".join([
        f"worker (/opt/yunpipe/lib/yunpipe/runtime/worker): {about}",
        f"  runs:   {spec.run_command}",
        f"  input:  each file is downloaded to {posixpath.join(spec.input_file_path, '<name>')}{stdin}",
        f"  output: {stdout}; uploaded to the output bucket under the input's key",
        f"  limit:  {spec.timeout_seconds} s per file; a failed file is retried, then reported",
        "  task environment: YUNPIPE_QUEUE_URL, YUNPIPE_OUTPUT_BUCKET (see docs/runtime-contract.md)",
    ])


def show(spec: AlgorithmSpec, dockerfile: str) -> None:
    print(json.dumps(spec.to_document(), indent=2))
    print(f"--- Dockerfile ---\n{dockerfile}--- runscript ---\n{runscript_summary(spec)}")


def _dry_run(spec: AlgorithmSpec, version: int, directory: Path, args: WrapOptions) -> None:
    context = write_build_context(spec, version, directory)
    if args.show:
        show(spec, context.dockerfile)
    print(f"{spec.name}: build context (version {version} if wrapped now) written to {context.dir}: "
          f"{', '.join(context.files)}")
    # Nothing is inspected in a dry run; a real build restores the image's own USER and WORKDIR.


def _wrap(spec: AlgorithmSpec, args: WrapOptions, registry: AlgorithmRegistry) -> bool:
    """Build, publish and record one algorithm; False when the developer declined."""
    from yunpipe.wrapper import images

    version = registry.next_version(spec.name)
    client = images.docker_client()
    base: BaseImage = images.base_image(client, spec)
    target = destination(args, spec, version)
    with tempfile.TemporaryDirectory(prefix=f"yunpipe-wrap-{spec.name}-") as tmp:
        context = write_build_context(spec, version, tmp, base)
        if args.show:
            show(spec, context.dockerfile)
            if not args.yes and not Prompter().yes_no(f"build and publish {target.reference}?"):
                print(f"{spec.name}: not wrapped", file=sys.stderr)
                return False
        print(f"building {target.reference}", file=sys.stderr)
        local_tag = f"{LOCAL_REPOSITORY}/{spec.name}:{version}" if args.local else target.reference
        image_id = images.build_image(client, context.dir, local_tag)
    digest = ""
    if target.push:
        if local_tag != target.reference:
            images.tag_image(client, image_id, target.reference)
        print(f"pushing {target.reference}", file=sys.stderr)
        digest = images.push_image(client, target.reference, target.auth_config)
    record = registry.record(spec, target.reference, digest, version)
    print(f"recorded {record.reference}: {record.image_uri}")
    return True


def _recorded_and_there(client: Any, args: WrapOptions, spec: AlgorithmSpec, latest: AlgorithmRecord,
                        source_id: str | None = None) -> bool:
    """Whether the latest version is this very algorithm, published where this wrap would
    publish it, and its image still to be had (pushed, or in the local daemon). With a
    source_id, the wrapped image must also be labelled as made from that developer image: a
    spec names its image by a tag, which a rebuild moves."""
    import docker.errors

    if latest.spec != spec or destination(args, spec, latest.version).reference != latest.image:
        return False
    if latest.digest and source_id is None:
        return True
    try:
        wrapped = client.images.get(latest.image)
    except docker.errors.ImageNotFound:
        return False
    return source_id is None or wrapped.labels.get(SOURCE_LABEL) == source_id


def _developer_image_id(client: Any, spec: AlgorithmSpec) -> str:
    """The ID of the image the spec names, as the local daemon has it ('' when it has none:
    wrap then pulls it, and a pulled image is new to this machine)."""
    import docker.errors

    try:
        return str(client.images.get(spec.container_name).id)
    except docker.errors.ImageNotFound:
        return ""


def _wrap_file(spec: AlgorithmSpec, args: WrapOptions, registry: AlgorithmRegistry) -> bool:
    """Wrap an algorithm file's spec, unless its latest version is the same spec made from the
    same developer image: wrapping the same again records nothing new."""
    from yunpipe.wrapper import images

    client = images.docker_client()
    latest = registry.get(spec.name)
    source_id = _developer_image_id(client, spec)
    if latest is not None and source_id and _recorded_and_there(client, args, spec, latest, source_id):
        print(f"{spec.name}: unchanged, still {latest.reference}: {latest.image_uri}")
        return True
    return _wrap(spec, args, registry)


def _wrap_package(packaged: Packaged, args: WrapOptions, registry: AlgorithmRegistry) -> bool:
    """Build the package's runtime image and wrap it, unless nothing changed: the spec names the
    runtime image by a hash of the folder's content, so an equal spec is the same code."""
    from yunpipe.wrapper import images

    spec = packaged.spec
    client = images.docker_client()
    latest = registry.get(spec.name)
    if latest is not None and _recorded_and_there(client, args, spec, latest):
        print(f"{spec.name}: unchanged, still {latest.reference}: {latest.image_uri}")
        return True
    build_runtime_image(client, packaged.package, packaged.image)
    return _wrap(spec, args, registry)


def wrap(args: WrapOptions) -> int:
    """Wrap every algorithm; the exit status (1 when the developer declined one)."""
    _check_flags(args)
    # A folder made by `yunpipe init` (or its yunpipe.yaml) is a package: wrap builds its image too.
    packaged = {path: package for path in args.files or () if (package := load_packaged(path))}
    specs = [describe_algorithm(start_file=args.files[0] if args.files else None)] if args.describe else [
        packaged[path].spec if path in packaged else load_algorithm_file(path) for path in args.files]
    # Every file is checked (system, image reference) before anything is built.
    for spec, source in zip(specs, args.files or ["described algorithm"], strict=True):
        render_dockerfile(spec, 1, source=source)
    registry = AlgorithmRegistry()
    if args.dry_run:
        root = Path(args.output_dir or tempfile.mkdtemp(prefix="yunpipe-wrap-"))
        for spec, source in zip(specs, args.files or [""], strict=True):
            directory = root if len(specs) == 1 else root / spec.name
            _dry_run(spec, registry.next_version(spec.name), directory, args)
            if source in packaged:
                files = write_runtime_context(packaged[source].package, packaged[source].image, directory / "runtime")
                print(f"{spec.name}: runtime image {spec.container_name}: build context written to "
                      f"{directory / 'runtime'}: {', '.join(files)}")
        return 0
    wrapped = [_wrap_package(packaged[source], args, registry) if source in packaged else _wrap_file(spec, args, registry)
               for spec, source in zip(specs, args.files or [""], strict=True)]
    return 0 if all(wrapped) else 1
