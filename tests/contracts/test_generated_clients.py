"""gen/go, gen/ts and gen/java are exactly what `make clients` writes from protos/ now.

Each language is regenerated into a temp dir with its own pinned generator (installed by
`make setup`, scripts/install-client-tools.sh) and compared file by file.
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.polyglot.examples import require_tools

TOOLS = {"go": ("go",), "ts": ("node", "npm"), "java": ("java", "mvn")}


def differences(committed: Path, fresh: Path) -> list[str]:
    """What differs between two generated trees; the files at the top of gen/<lang> (go.mod,
    go.sum) are written by hand, not compared."""
    out: list[str] = []

    def walk(cmp: filecmp.dircmp[str], rel: Path) -> None:
        out.extend(f"only in gen: {rel / n}" for n in cmp.left_only)
        out.extend(f"missing from gen: {rel / n}" for n in cmp.right_only)
        for name in cmp.common_files:
            if (Path(cmp.left) / name).read_bytes() != (Path(cmp.right) / name).read_bytes():
                out.append(f"differs: {rel / name}")
        for name, sub in cmp.subdirs.items():
            walk(sub, rel / name)

    top = filecmp.dircmp(committed, fresh)
    out.extend(f"only in gen: {n}/" for n in top.left_only if (committed / n).is_dir())
    out.extend(f"missing from gen: {n}/" for n in top.right_only)
    for name, sub in top.subdirs.items():
        walk(sub, Path(name))
    return out


@pytest.mark.parametrize("lang", sorted(TOOLS))
def test_generated_client_is_fresh(lang: str, tmp_path: Path) -> None:
    require_tools(*TOOLS[lang], what=f"regenerating gen/{lang}")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_clients.py"), lang, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n(did `make setup` run?)"
    stale = differences(ROOT / "gen" / lang, tmp_path / lang)
    assert not stale, f"gen/{lang} is stale, run `make clients`:\n" + "\n".join(stale)
