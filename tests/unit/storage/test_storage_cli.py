"""`modelship fetch` exit codes and the one line written to stderr and the termination log."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from modelship_server.storage import cli
from modelship_server.storage.errors import SourceError
from modelship_server.storage.fetch import BACKENDS
from modelship_server.storage.limits import Meter
from modelship_server.storage.uri import Location


def test_success_logs_files_bytes_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src" / "5"
    source.mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"12345")
    code = cli.main(["fetch", f"--uri=file://{tmp_path / 'src'}", f"--dest={tmp_path / 'out'}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "fetched 1 files, 0.0 MiB in" in out
    assert "versions 5" in out


def test_failure_is_one_line_in_both_places(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "termination-log"
    code = cli.main(
        [
            "fetch",
            f"--uri=file://{tmp_path / 'missing'}",
            f"--dest={tmp_path / 'out'}",
            f"--termination-log={log}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err == f"cannot read file://{tmp_path / 'missing'}: no such file or folder\n"
    assert log.read_text() == err


def test_an_unexpected_error_has_no_traceback_and_no_signature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(location: Location, target: Path, meter: Meter) -> None:
        raise RuntimeError(f"boom while reading {location.url}\nline two")

    monkeypatch.setitem(BACKENDS, "https", broken)
    uri = "https://h/m.tar.gz?X-Amz-Signature=deadbeef"
    code = cli.main(
        ["fetch", f"--uri={uri}", f"--dest={tmp_path}/o", f"--termination-log={tmp_path}/t"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert "deadbeef" not in err
    assert err.count("\n") == 1
    assert err.startswith("cannot fetch https://h/m.tar.gz: unexpected RuntimeError: boom")


def test_a_source_error_names_the_uri_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(location: Location, target: Path, meter: Meter) -> None:
        raise SourceError("access denied (HTTP 403) for /m.tar.gz")

    monkeypatch.setitem(BACKENDS, "https", denied)
    cli.main(
        [
            "fetch",
            "--uri=https://u:p@h/m.tar.gz?sig=1",
            f"--dest={tmp_path}/o",
            f"--termination-log={tmp_path}/t",
        ]
    )
    assert (
        capsys.readouterr().err
        == "cannot read https://h/m.tar.gz: access denied (HTTP 403) for /m.tar.gz\n"
    )


def test_fetch_is_a_subcommand() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


def test_limits_come_from_flags_and_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src" / "1"
    source.mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"x" * 5000)
    monkeypatch.setenv("MODELSHIP_FETCH_MAX_BYTES", "4Ki")
    args = ["fetch", f"--uri=file://{tmp_path / 'src'}", f"--dest={tmp_path / 'out'}"]
    args.append(f"--termination-log={tmp_path / 'log'}")
    assert cli.main(args) == 1
    assert "the download exceeds 4096 bytes (--max-bytes" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []
    assert cli.main([*args, "--max-bytes=1Mi"]) == 0


def test_a_bad_limit_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log"
    args = ["fetch", "--uri=s3://b/m", f"--dest={tmp_path}", f"--termination-log={log}"]
    assert cli.main([*args, "--deadline=-3"]) == 1
    line = "invalid --deadline: '-3' must be a positive number\n"
    assert capsys.readouterr().err == line
    assert log.read_text() == line


def test_the_deadline_interrupts_a_blocked_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that a client library never times out (here: a sleep) is cut by the alarm."""

    def stuck(location: Location, target: Path, meter: Meter) -> None:
        (target / "saved_model.pb").write_bytes(b"partial")
        time.sleep(600)

    monkeypatch.setitem(BACKENDS, "s3", stuck)
    log = tmp_path / "log"
    args = ["fetch", "--uri=s3://b/m", f"--dest={tmp_path / 'o'}", f"--termination-log={log}"]
    assert cli.main([*args, "--deadline=0.5"]) == 1
    line = "cannot read s3://b/m: the fetch took longer than 0.5 s (--deadline, "
    line += "MODELSHIP_FETCH_DEADLINE)\n"
    assert capsys.readouterr().err == line
    assert list((tmp_path / "o").iterdir()) == []
