"""Secrets on disk are 0600 from the first byte, and re-issuing tightens a looser file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from meshkit.security import secrets
from meshkit.security.secrets import write_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def loose_umask() -> object:
    """Umask 0: nothing of the result may come from the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def replaces(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, bytes]]:
    """Every ``os.replace`` of the helper: the temp file's name, mode and content just before."""
    seen: list[tuple[str, int, bytes]] = []
    real = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append((str(src), mode(Path(src)), Path(src).read_bytes()))
        real(src, dst)

    monkeypatch.setattr(secrets.os, "replace", spy)
    return seen


def test_a_new_secret_is_0600_at_every_moment(
    tmp_path: Path, loose_umask: object, replaces: list[tuple[str, int, bytes]]
) -> None:
    key = tmp_path / "key.pem"
    write_secret(key, b"-----BEGIN PRIVATE KEY-----\n")

    # the temp file, content complete, was already 0600 before it became key.pem
    [(tmp, tmp_mode, tmp_content)] = replaces
    assert Path(tmp).parent == tmp_path and Path(tmp).name != "key.pem"
    assert tmp_mode == 0o600
    assert tmp_content == b"-----BEGIN PRIVATE KEY-----\n"
    assert mode(key) == 0o600
    assert key.read_bytes() == b"-----BEGIN PRIVATE KEY-----\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]  # no temp file left


def test_the_temp_file_is_0600_from_its_creation(
    tmp_path: Path, loose_umask: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before a byte is written: the mode of the temp file as mkstemp returns it."""
    created: list[int] = []
    real = secrets.tempfile.mkstemp

    def spy(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)  # type: ignore[call-overload]
        created.append(stat.S_IMODE(os.fstat(fd).st_mode))
        assert os.fstat(fd).st_size == 0
        return fd, name

    monkeypatch.setattr(secrets.tempfile, "mkstemp", spy)
    write_secret(tmp_path / "token", "s3cret")
    assert created == [0o600]


def test_re_issuing_tightens_an_existing_0644_key(tmp_path: Path, loose_umask: object) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(b"old")
    key.chmod(0o644)
    assert mode(key) == 0o644

    write_secret(key, b"new")
    assert mode(key) == 0o600
    assert key.read_bytes() == b"new"


def test_parent_directories_it_creates_are_0700(tmp_path: Path, loose_umask: object) -> None:
    key = tmp_path / "state" / "certs" / "operator" / "key.pem"
    write_secret(key, b"k")
    for d in (tmp_path / "state", tmp_path / "state" / "certs", key.parent):
        assert mode(d) == 0o700, d
    assert mode(key) == 0o600


def test_text_is_written_as_utf8(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "token", "tøken\n")
    assert path.read_bytes() == "tøken\n".encode()


def test_a_symlink_at_the_path_is_replaced_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"untouched")
    elsewhere.chmod(0o644)
    link = tmp_path / "key.pem"
    link.symlink_to(elsewhere)

    write_secret(link, b"secret")
    assert not link.is_symlink() and mode(link) == 0o600
    assert link.read_bytes() == b"secret"
    assert elsewhere.read_bytes() == b"untouched"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "key.pem"
    write_secret(key, b"old")

    def broken(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(secrets.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_secret(key, b"new")
    assert key.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]
