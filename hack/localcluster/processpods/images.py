"""Which program an image runs on this node: one table, image repository → programs.

A real kubelet pulls an image and runs its entrypoint; here an image is a name for programs
already installed on this machine (the venv of this checkout). An image with no entry cannot be
"pulled", as on a node without registry access.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
MODELSHIP_IMAGE = "ghcr.io/modelship/modelship"
MODEL_SERVER = "modelship-server"
STORAGE_TOOL = "modelship"


@dataclass(frozen=True)
class Image:
    """What one image repository provides: its entrypoint and the programs a `command` may name."""

    entrypoint: str
    programs: Mapping[str, str] = field(default_factory=dict)


def default_images(bin_dir: Path = VENV_BIN) -> dict[str, Image]:
    programs = {name: str(bin_dir / name) for name in (MODEL_SERVER, STORAGE_TOOL)}
    return {MODELSHIP_IMAGE: Image(entrypoint=programs[MODEL_SERVER], programs=programs)}


def extra_image(spec: str) -> tuple[str, Image]:
    """`REPO=PROGRAM` from the command line: PROGRAM is the entrypoint, also named by basename."""
    repository, sep, program = spec.partition("=")
    if not sep or not repository or not program:
        raise ValueError(f"expected REPO=PROGRAM, got {spec!r}")
    path = str(Path(program).resolve())
    return repository, Image(entrypoint=path, programs={Path(path).name: path})


def repository(image: str) -> str:
    """The image name without its tag or digest (`host:5000/a/b:tag` → `host:5000/a/b`)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


class ImageNotFoundError(Exception):
    """The image has no local program: the container reports ErrImagePull."""


class ProgramNotFoundError(Exception):
    """The command names a program the image does not have: the container cannot start."""


@dataclass(frozen=True)
class Launch:
    """A container's program and arguments before mount paths are rewritten."""

    argv: list[str]
    # The model server binds the pod's own address; `modelship` writes its termination message.
    program: str


def not_pullable_message(image: str, node: str, images: Mapping[str, Image]) -> str:
    runs = ", ".join(sorted(images)) or "nothing"
    return f"image {image} has no local program on node {node} (this node runs: {runs})"


def resolve(images: Mapping[str, Image], image: str) -> Image:
    found = images.get(repository(image))
    if found is None:
        raise ImageNotFoundError(image)
    return found


def launch(image: Image, container: Mapping[str, Any]) -> Launch:
    """The argv a container runs: its `command` (first word looked up among the image's programs)
    or the image's entrypoint, then its `args`."""
    command: list[str] = list(container.get("command") or [])
    args: list[str] = list(container.get("args") or [])
    if command:
        program = image.programs.get(command[0])
        if program is None:
            known = ", ".join(sorted(image.programs)) or "none"
            raise ProgramNotFoundError(
                f'exec: "{command[0]}": executable file not found (this image has: {known})'
            )
        argv = [program, *command[1:], *args]
    else:
        argv = [image.entrypoint, *args]
    return Launch(argv=argv, program=Path(argv[0]).name)


def program_argv(image: Image, command: Sequence[str]) -> list[str]:
    """An exec probe's or hook's command, run with the image's programs."""
    if not command:
        raise ProgramNotFoundError("exec: empty command")
    program = image.programs.get(command[0])
    if program is None:
        raise ProgramNotFoundError(f'exec: "{command[0]}": executable file not found')
    return [program, *command[1:]]


def finish_argv(launch_: Launch, *, pod_ip: str, termination_log: Path) -> list[str]:
    """What the image would get from its runtime here: the server binds the pod's address, and
    `modelship` writes its message to the file standing for /dev/termination-log."""
    argv = list(launch_.argv)
    if launch_.program == MODEL_SERVER and not any(
        a == "--host" or a.startswith("--host=") for a in argv[1:]
    ):
        argv.append(f"--host={pod_ip}")
    if launch_.program == STORAGE_TOOL and not any(
        a.startswith("--termination-log") for a in argv[1:]
    ):
        argv.append(f"--termination-log={termination_log}")
    return argv
