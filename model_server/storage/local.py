"""file:// for development: copies a local folder (or one archive file)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import SourceError
from .limits import Meter
from .uri import Location


def download(location: Location, target: Path, meter: Meter) -> None:
    source = Path(location.path)

    def copy(src: str, dst: str) -> str:
        meter.add_file()
        meter.add(Path(src).stat().st_size)  # before copying, so a limit is hit before the disk
        return str(shutil.copy2(src, dst))

    try:
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, copy_function=copy)
        elif source.is_file():
            copy(str(source), str(target / source.name))
        else:
            raise SourceError("no such file or folder")
    except PermissionError as e:
        raise SourceError(f"permission denied: {e.filename}") from e
    except OSError as e:
        raise SourceError(f"{e.strerror or type(e).__name__}: {e.filename or ''}") from e
