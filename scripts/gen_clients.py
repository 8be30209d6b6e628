"""Generate the Go, TypeScript (Node.js) and Java clients of protos/ into gen/{go,ts,java}.

Each language with its own generators, installed from its own registry by
``scripts/install-client-tools.sh`` (``make setup``):

* go:   ``buf generate`` with the local plugins protoc-gen-go and protoc-gen-go-grpc
        (Go module proxy), template ``clients/buf.gen.go.yaml``;
* ts:   ``buf generate --include-imports`` with the local plugin protoc-gen-es (npm,
        clients/node), template ``clients/buf.gen.ts.yaml``: vendored imports such as
        ``google/api/annotations.proto`` are generated too (not the well-known types);
* java: protoc and protoc-gen-grpc-java through the protobuf Maven plugin (Maven
        Central), ``clients/java/pom.xml`` profile ``generate``.

Every directory under ``gen/<lang>/`` is generated and replaced as a whole (``shop/``, and
``google/`` for ts); the files at its top (``gen/go/go.mod``, ``go.sum``) are written by
hand and stay. ``--out DIR`` writes DIR/<lang>/ instead (the staleness test uses it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGS = ("go", "ts", "java")
CACHE_BIN = (
    Path(
        os.environ.get("MESHKIT_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "meshkit-shop"
    )
    / "bin"
)
NODE_BIN = ROOT / "clients" / "node" / "node_modules" / ".bin"
BUF = Path(sys.executable).parent / "buf"


def tool_env() -> dict[str, str]:
    """PATH with the cached Go plugins and the Node client's plugins first."""
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(CACHE_BIN), str(NODE_BIN), os.environ["PATH"]]),
    }


def _buf_generate(template: str, lang: str, scratch: Path, *extra: str) -> Path:
    subprocess.run(
        [str(BUF), "generate", "protos", "--template", template, "-o", str(scratch), *extra],
        cwd=ROOT,
        env=tool_env(),
        check=True,
    )
    return scratch / "gen" / lang


def _maven_generate(scratch: Path) -> Path:
    out = scratch / "java"
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(ROOT / "clients" / "java" / "pom.xml"),
            "-Pgenerate",
            f"-Dgen.dir={out}",
            "generate-sources",
        ],
        cwd=ROOT,
        check=True,
    )
    return out


def generate(lang: str, out: Path) -> None:
    """Regenerate the directories of ``out`` for ``lang``; raise if a generator fails."""
    with tempfile.TemporaryDirectory(prefix=f"gen-{lang}-") as tmp:
        scratch = Path(tmp)
        if lang == "go":
            fresh = _buf_generate("clients/buf.gen.go.yaml", "go", scratch)
        elif lang == "ts":
            fresh = _buf_generate("clients/buf.gen.ts.yaml", "ts", scratch, "--include-imports")
        elif lang == "java":
            fresh = _maven_generate(scratch)
        else:
            raise ValueError(lang)
        out.mkdir(parents=True, exist_ok=True)
        for old in out.iterdir():
            if old.is_dir():
                shutil.rmtree(old)
        for new in fresh.iterdir():
            shutil.copytree(new, out / new.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("langs", nargs="*", metavar="LANG", help="go, ts, java (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "gen", help="DIR/<lang>/")
    args = parser.parse_args()
    if unknown := set(args.langs) - set(LANGS):
        parser.error(f"unknown language(s): {', '.join(sorted(unknown))}")
    for lang in args.langs or LANGS:
        print(f"gen_clients: {lang} -> {args.out / lang}", file=sys.stderr)
        generate(lang, args.out / lang)


if __name__ == "__main__":
    main()
