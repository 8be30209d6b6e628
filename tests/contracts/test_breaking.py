"""``buf breaking`` against the last released contracts (contracts/baseline/image.binpb).

protos/ must not break the release. Deliberately breaking changes are kept as patches in
fixtures/breaking/ (never applied to protos/): each is applied to a copy of protos/ and
must fail with buf's message, given on the patch's ``buf:`` lines. The patches in
fixtures/compatible/ must pass (and lint), so the check does not cry wolf.

The rules are buf's FILE category (buf.yaml): wire, JSON and generated-source
compatibility, since clients in Go, Node and Java compile against the generated code. Under
it even a deletion with ``reserved`` breaks: retire a field with ``[deprecated = true]``,
or move to a new package version.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from tests.conftest import BIN, ROOT

BASELINE = ROOT / "contracts" / "baseline" / "image.binpb"
FIXTURES = Path(__file__).parent / "fixtures"
BREAKING = sorted((FIXTURES / "breaking").glob("*.patch"))
COMPATIBLE = sorted((FIXTURES / "compatible").glob("*.patch"))


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "buf"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def workspace_with(patch: Path, tmp_path: Path) -> Path:
    """A copy of the buf workspace (buf.yaml, protos/, vendored imports) with ``patch``
    applied to protos/."""
    ws = tmp_path / "workspace"
    shutil.copytree(ROOT / "protos", ws / "protos")
    for extra in ("buf.yaml", "third_party"):
        source = ROOT / extra
        if source.is_dir():
            shutil.copytree(source, ws / extra)
        elif source.exists():
            shutil.copy(source, ws / extra)
    out = subprocess.run(
        ["git", "apply", str(patch)], cwd=ws / "protos", capture_output=True, text=True
    )
    assert out.returncode == 0, f"{patch.name} no longer applies to protos/:\n{out.stderr}"
    return ws


def expected_messages(patch: Path) -> list[str]:
    return [
        line.removeprefix("buf: ")
        for line in patch.read_text().splitlines()
        if line.startswith("buf: ")
    ]


def test_protos_do_not_break_the_last_release() -> None:
    out = buf("breaking", "protos", "--against", str(BASELINE))
    assert out.returncode == 0, (
        "protos/ breaks the released contracts (contracts/baseline/):\n" + out.stdout + out.stderr
    )


def test_baseline_holds_every_contract_file() -> None:
    image = descriptor_pb2.FileDescriptorSet.FromString(BASELINE.read_bytes())
    released = {f.name for f in image.file if f.package.startswith("shop.")}
    current = {str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto")}
    assert released <= current, f"released but gone from protos/: {released - current}"


def test_fixtures_are_there() -> None:
    assert len(BREAKING) >= 4 and COMPATIBLE
    assert all(expected_messages(p) for p in BREAKING), "each breaking patch names buf's message"


@pytest.mark.parametrize("patch", BREAKING, ids=lambda p: p.stem)
def test_breaking_change_is_caught(patch: Path, tmp_path: Path) -> None:
    ws = workspace_with(patch, tmp_path)
    out = buf("breaking", "protos", "--against", str(BASELINE), cwd=ws)
    assert out.returncode != 0, f"buf breaking let {patch.name} through"
    for message in expected_messages(patch):
        assert message in out.stdout, f"buf said:\n{out.stdout}{out.stderr}"


@pytest.mark.parametrize("patch", COMPATIBLE, ids=lambda p: p.stem)
def test_compatible_change_passes(patch: Path, tmp_path: Path) -> None:
    ws = workspace_with(patch, tmp_path)
    out = buf("breaking", "protos", "--against", str(BASELINE), cwd=ws)
    assert out.returncode == 0, out.stdout + out.stderr
    lint = buf("lint", "protos", cwd=ws)
    assert lint.returncode == 0, lint.stdout + lint.stderr
