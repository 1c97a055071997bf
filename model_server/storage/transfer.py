"""Writing one downloaded object to disk, metered, then checked against what the source promised:
its length and, where the source gives one, its MD5. A stream that breaks off early is a failure,
never a shorter file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import SourceError
from .limits import Meter

CHUNK = 1 << 16


def save(
    read: Callable[[int], bytes],
    path: Path,
    meter: Meter,
    *,
    length: int | None = None,
    md5: str | None = None,
) -> None:
    """Copy `read` (which returns what has arrived, b"" at the end) into `path`. `length` is the
    size the source announced; `md5` the hex digest it announced."""
    meter.add_file()
    digest = hashlib.md5(usedforsecurity=False) if md5 else None
    received = 0
    with path.open("wb") as out:
        while chunk := read(CHUNK):
            received += len(chunk)
            if length is not None and received > length:
                raise SourceError(f"{path.name} is longer than the announced {length} bytes")
            out.write(chunk)
            if digest:
                digest.update(chunk)
            meter.add(len(chunk))
    check_complete(path.name, received, length)
    if digest and md5 and digest.hexdigest() != md5.lower():
        raise SourceError(
            f"{path.name} is corrupt: its MD5 {digest.hexdigest()} does not match the source's "
            f"{md5.lower()}"
        )


def check_complete(name: str, received: int, length: int | None) -> None:
    if length is not None and received != length:
        raise SourceError(
            f"the download of {name} broke off: received {received} of {length} bytes"
        )


class MeteredFile:
    """A file a client library writes into, metered per write (for libraries that own the read
    loop, such as google-cloud-storage)."""

    def __init__(self, out: BinaryIO, meter: Meter) -> None:
        self._out = out
        self._meter = meter
        self.written = 0

    def write(self, data: bytes) -> int:
        count = self._out.write(data)
        self.written += count
        self._meter.add(count)
        return count

    def flush(self) -> None:
        self._out.flush()

    def tell(self) -> int:
        return self._out.tell()
