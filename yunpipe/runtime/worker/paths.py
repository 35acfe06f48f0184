"""Where a job's files go: object keys -> local paths as the contract places them, result
files -> result keys.
"""
from __future__ import annotations

import contextlib
import os
import posixpath
from urllib.parse import unquote_plus

from .message import Job

# The folder of a gather whose run name has no usable basename.
GATHER_FOLDER = "gather"


def file_name(key: str) -> str:
    """The local file name of an object key: its basename."""
    base = posixpath.basename(key)
    # A "folder" marker key or a dot name cannot be a file name (and must not escape the dir).
    if base in ("", ".", ".."):
        raise ValueError(f"key {key!r} does not name a file")
    return base


def within(path: str, folder: str) -> bool:
    path, folder = os.path.normpath(path), os.path.normpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def local_output_path(algorithm: dict, name: str, input_paths: list[str]) -> str:
    """`<output_file_path>/<name>`, or `output-<name>` there when that would be an input or a
    folder holding one (input and output folders are often the same)."""
    path = os.path.join(algorithm["output_file_path"], name)
    if any(within(p, path) for p in input_paths):
        path = os.path.join(algorithm["output_file_path"], "output-" + name)
    return path


def local_paths(algorithm: dict, key: str) -> tuple[str, str]:
    """(input path, output path) for an object key, as the contract places them."""
    base = file_name(key)
    input_path = os.path.join(algorithm["input_file_path"], base)
    return input_path, local_output_path(algorithm, base, [input_path])


def join_input_path(algorithm: dict, step: str, key: str) -> str:
    """Where a join's input from `step` goes: `<input_file_path>/<step>/<basename of key>`."""
    return os.path.join(algorithm["input_file_path"], step, file_name(key))


def gather_folder_name(key: str) -> str:
    """The folder a gather downloads into: the run name's basename, or GATHER_FOLDER."""
    base = posixpath.basename(key)
    return GATHER_FOLDER if base in ("", ".", "..") else base


def gather_relative_path(prefix: str, key: str) -> str:
    """The path under the gather folder of an object found under `prefix`; ValueError for a key
    that would land outside it."""
    # The object at the prefix itself keeps its own name.
    rest = key[len(prefix):] or posixpath.basename(key)
    parts = [p for p in rest.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"key {key!r} does not name a file inside the gather folder")
    return "/".join(parts)


def result_objects(prefix: str, key: str, output_path: str) -> list[tuple[str, str]]:
    """(local file, result key) pairs: a file result goes to prefix+key, a directory result to
    prefix+key/relpath for every file in it. Empty when there is nothing to upload."""
    if os.path.isfile(output_path):
        return [(output_path, prefix + key)]
    pairs = []
    if os.path.isdir(output_path):
        for root, dirs, files in os.walk(output_path):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, output_path).replace(os.sep, "/")
                pairs.append((path, f"{prefix}{key}/{rel}"))
    return pairs


def join_paths(algorithm: dict, job: Job) -> tuple[dict[str, str], str]:
    """A join's (step id -> input path, output path); ValueError for a key naming no file."""
    inputs = {s.step: join_input_path(algorithm, s.step, s.key) for s in job.inputs}
    return inputs, local_output_path(algorithm, file_name(job.source.key), list(inputs.values()))


def gather_paths(algorithm: dict, key: str) -> tuple[str, str]:
    """A gather's (folder, output path)."""
    name = gather_folder_name(key)
    folder = os.path.join(algorithm["input_file_path"], name)
    return folder, local_output_path(algorithm, name, [folder])


def job_paths(algorithm: dict, job: Job) -> tuple[str, ...]:
    """Every local path a job may write: its input(s) or gather folder and its output, for a
    plain message those of its URL-decoded key too. A key naming no file adds nothing (the
    job fails on it before it touches the disk)."""
    try:
        if job.inputs:
            inputs, output = join_paths(algorithm, job)
            return (*inputs.values(), output)
        if job.gather_prefix is not None:
            return gather_paths(algorithm, job.source.key)
    except ValueError:
        return ()
    paths: list[str] = []
    for key in dict.fromkeys((job.source.key, unquote_plus(job.source.key))):
        with contextlib.suppress(ValueError):
            paths.extend(local_paths(algorithm, key))
    return tuple(paths)
