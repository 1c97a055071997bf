"""`modelship fetch` against an HTTP server that misbehaves on purpose: every class of broken
download fails with one clear line, exit code 1, and an empty destination. Each case is bounded
by the fetch's own limits, set low here, and by the subprocess timeout."""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_http import (
    Hostile,
    chunked_cut,
    cut_short,
    honest,
    hostile_server,
    trickle,
    wrong_md5,
)
from storage_helpers import (
    Run,
    cut_after_last_member,
    modelship_fetch,
    saved_model_files,
    tar_bytes,
    tree,
)

MODEL = saved_model_files("1/")
# A bounded run: no case may take long, whatever the server does.
TIMEOUT = 60


@pytest.fixture(scope="module")
def server() -> Iterator[Hostile]:
    with hostile_server() as hostile:
        yield hostile


def run(url: str, tmp_path: Path, *args: str) -> Run:
    return modelship_fetch(url, tmp_path / "models", args=args, timeout=TIMEOUT)


def assert_failed_empty(result: Run, tmp_path: Path, line: str) -> None:
    assert (result.code, result.stderr, result.termination_log) == (1, line, line)
    assert list((tmp_path / "models").iterdir()) == []


def test_the_server_serves_a_whole_model(server: Hostile, tmp_path: Path) -> None:
    url = server.route("/whole.tar", honest(tar_bytes(MODEL)))
    result = run(url, tmp_path)
    assert result.code == 0, result.stderr
    assert tree(tmp_path / "models") == MODEL


def test_a_body_cut_mid_file(server: Hostile, tmp_path: Path) -> None:
    body = tar_bytes(MODEL)
    url = server.route("/short.tar", cut_short(body, 700))
    line = (
        f"cannot read {url}: the download of short.tar broke off: "
        f"received 700 of {len(body)} bytes\n"
    )
    assert_failed_empty(run(url, tmp_path), tmp_path, line)


def test_a_length_that_promises_more_than_is_sent(server: Hostile, tmp_path: Path) -> None:
    data = MODEL["1/saved_model.pb"]
    url = server.route("/saved_model.pb", cut_short(data + b"\0" * 100, len(data)))
    line = (
        f"cannot read {url}: the download of saved_model.pb broke off: "
        f"received {len(data)} of {len(data) + 100} bytes\n"
    )
    assert_failed_empty(run(url, tmp_path), tmp_path, line)


def test_a_chunked_body_cut_mid_chunk(server: Hostile, tmp_path: Path) -> None:
    url = server.route("/chunked.tar", chunked_cut(tar_bytes(MODEL)))
    line = f"cannot read {url}: the download of chunked.tar broke off: IncompleteRead\n"
    assert_failed_empty(run(url, tmp_path), tmp_path, line)


def test_a_wrong_content_md5(server: Hostile, tmp_path: Path) -> None:
    url = server.route("/corrupt.tar", wrong_md5(tar_bytes(MODEL)))
    result = run(url, tmp_path)
    assert result.code == 1
    assert result.stderr.startswith(f"cannot read {url}: corrupt.tar is corrupt: its MD5 ")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_plain_tar_cut_at_a_member_boundary(server: Hostile, tmp_path: Path) -> None:
    whole = tar_bytes(MODEL)
    url = server.route("/boundary.tar", honest(cut_after_last_member(whole)))
    line = f"cannot read {url}: boundary.tar is truncated: the tar has no end-of-archive blocks\n"
    assert_failed_empty(run(url, tmp_path), tmp_path, line)


def test_a_tar_gz_cut_short(server: Hostile, tmp_path: Path) -> None:
    whole = gzip.compress(tar_bytes(MODEL))
    url = server.route("/cut.tar.gz", honest(whole[: len(whole) - 6]))
    result = run(url, tmp_path)
    assert result.code == 1
    assert result.stderr.startswith(f"cannot read {url}: cut.tar.gz is not a readable tar archive")
    assert list((tmp_path / "models").iterdir()) == []


def test_an_archive_bomb_is_refused_before_unpacking(server: Hostile, tmp_path: Path) -> None:
    bomb = gzip.compress(tar_bytes({"1/saved_model.pb": bytes(64 << 20)}), compresslevel=9)
    url = server.route("/bomb.tar.gz", honest(bomb))
    result = run(url, tmp_path)  # the default limits
    assert result.code == 1
    assert result.stderr.startswith(f"cannot read {url}: bomb.tar.gz would expand ")
    assert "over the limit of 200 (--max-ratio, MODELSHIP_FETCH_MAX_RATIO)" in result.stderr
    assert list((tmp_path / "models").iterdir()) == []


def test_an_archive_over_the_size_limit(server: Hostile, tmp_path: Path) -> None:
    """Small to download, too big once unpacked (the ratio allowed, the size not)."""
    archive = gzip.compress(tar_bytes({**MODEL, "1/variables/big": bytes(4 << 20)}))
    url = server.route("/big.tar.gz", honest(archive))
    result = run(url, tmp_path, "--max-bytes=3Mi", "--max-ratio=100000")
    line = (
        f"cannot read {url}: big.tar.gz would unpack to "
        f"{sum(map(len, MODEL.values())) + (4 << 20)} bytes, over the limit of 3145728 "
        "(--max-bytes, MODELSHIP_FETCH_MAX_BYTES)\n"
    )
    assert_failed_empty(result, tmp_path, line)


def test_an_endless_body_stops_at_the_size_limit(server: Hostile, tmp_path: Path) -> None:
    url = server.route("/endless", trickle(b"\0" * 65536, every=0))
    result = run(url, tmp_path, "--max-bytes=4Mi")
    line = (
        f"cannot read {url}: the download exceeds 4194304 bytes "
        "(--max-bytes, MODELSHIP_FETCH_MAX_BYTES)\n"
    )
    assert_failed_empty(result, tmp_path, line)


def test_a_trickle_stops_at_the_minimum_rate(server: Hostile, tmp_path: Path) -> None:
    url = server.route("/trickle.tar", trickle(b"\0", every=0.05, length=1 << 20))
    result = modelship_fetch(
        url,
        tmp_path / "models",
        env={"MODELSHIP_FETCH_MIN_RATE": "1Ki", "MODELSHIP_FETCH_RATE_WINDOW": "1"},
        timeout=TIMEOUT,
    )
    assert result.code == 1
    assert result.stderr.startswith(f"cannot read {url}: the source is too slow: ")
    assert "below the minimum of 1024 (--min-rate, MODELSHIP_FETCH_MIN_RATE)" in result.stderr
    assert list((tmp_path / "models").iterdir()) == []


def test_a_steady_but_endless_download_stops_at_the_deadline(
    server: Hostile, tmp_path: Path
) -> None:
    url = server.route("/slow.tar", trickle(b"\0" * 4096, every=0.01, length=1 << 40))
    result = run(url, tmp_path, "--deadline=2", "--min-rate=1Ki", "--rate-window=1")
    line = (
        f"cannot read {url}: the fetch took longer than 2 s (--deadline, "
        "MODELSHIP_FETCH_DEADLINE)\n"
    )
    assert_failed_empty(result, tmp_path, line)


def test_sigterm_mid_download_leaves_the_destination_empty(server: Hostile, tmp_path: Path) -> None:
    url = server.route("/forever.tar", trickle(b"\0" * 512, every=0.05, length=1 << 30))
    dest = tmp_path / "models"
    log = tmp_path / "models.termination-log"
    command = [str(Path(sys.executable).parent / "modelship"), "fetch", f"--uri={url}"]
    command += [f"--dest={dest}", f"--termination-log={log}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait for bytes on disk: the download is under way inside the staging folder.
        for _ in range(600):
            if any(p.is_file() and p.stat().st_size for p in dest.rglob("*")):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the download never started")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = f"cannot fetch {url}: stopped by SIGTERM\n"
    assert (proc.returncode, stderr, log.read_text()) == (1, line, line)
    assert list(dest.iterdir()) == []


def test_an_endless_directory_index(server: Hostile, tmp_path: Path) -> None:
    page = b"<a href='x'>x</a>" * 1000
    url = server.route("/listing/", trickle(page, every=0, content_type="text/html"))
    line = f"cannot read {url}: the index at /listing/ is larger than 8388608 bytes\n"
    assert_failed_empty(run(url, tmp_path), tmp_path, line)


def test_a_tar_of_too_many_files(server: Hostile, tmp_path: Path) -> None:
    members = {**MODEL, **{f"1/assets/{i}": b"" for i in range(2000)}}
    url = server.route("/many.tar", honest(tar_bytes(members)))
    line = (
        f"cannot read {url}: many.tar holds {len(members)} members, over the limit of 1000 "
        "(--max-files, MODELSHIP_FETCH_MAX_FILES)\n"
    )
    assert_failed_empty(run(url, tmp_path, "--max-files=1000"), tmp_path, line)
