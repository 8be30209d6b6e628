"""Take protos/ as the released contracts: write contracts/baseline/image.binpb.

``buf breaking`` compares protos/ against this image (tests/contracts/, ``make
contracts-check``), so it is refreshed only on purpose, by ``make contracts-release``, and
committed with the release. The image is built by buf (``.venv/bin/buf``, PyPI
``buf-bin``) without source info, so it changes only when the contracts do.

A release that breaks the previous one is refused unless ``--allow-breaking`` (a new major
version of a package is the usual way out: ``shop.order.v2`` beside ``shop.order.v1``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUF = Path(sys.executable).parent / "buf"
BASELINE = ROOT / "contracts" / "baseline" / "image.binpb"


def build_image(protos: Path, out: Path) -> None:
    subprocess.run(
        [str(BUF), "build", str(protos), "--exclude-source-info", "-o", str(out)], check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--protos", type=Path, default=ROOT / "protos")
    parser.add_argument("--out", type=Path, default=BASELINE)
    parser.add_argument(
        "--allow-breaking", action="store_true", help="release even if buf breaking fails"
    )
    args = parser.parse_args()
    if args.out.exists() and not args.allow_breaking:
        res = subprocess.run(
            [str(BUF), "breaking", str(args.protos), "--against", str(args.out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            sys.exit(
                f"contracts-release: protos/ breaks the last release:\n{res.stdout}{res.stderr}"
                "Refusing; add a new package version instead, or pass --allow-breaking."
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "image.binpb"
        build_image(args.protos, fresh)
        changed = not args.out.exists() or args.out.read_bytes() != fresh.read_bytes()
        args.out.write_bytes(fresh.read_bytes())
    print(f"contracts-release: {args.out} {'updated' if changed else 'unchanged'}")


if __name__ == "__main__":
    main()
