"""file:// for development: copies a local folder (or one archive file)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import SourceError
from .uri import Location


def download(location: Location, target: Path) -> None:
    source = Path(location.path)
    try:
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, target / source.name)
        else:
            raise SourceError("no such file or folder")
    except PermissionError as e:
        raise SourceError(f"permission denied: {e.filename}") from e
    except OSError as e:
        raise SourceError(f"{e.strerror or type(e).__name__}: {e.filename or ''}") from e
