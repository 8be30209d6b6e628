"""Wire compatibility across languages: the vectors of contracts/vectors/vectors.json
(scripts/contract_vectors.py) decoded and re-encoded by Python, Go, Node and Java.

Each reader must give back the very bytes Python wrote, and Python must read its answer
as the same message. ``current`` vectors go through the code generated from protos/;
``next-release`` vectors (a field and an enum value the release does not know) through
descriptors of the last release only: an old reader keeps what a new writer added.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields
from google.protobuf.message import Message

from tests.conftest import ROOT
from tests.polyglot.examples import build_go, build_java, build_node, require_tools

VECTORS = ROOT / "contracts" / "vectors" / "vectors.json"
BASELINE = ROOT / "contracts" / "baseline" / "image.binpb"
SCRIPT = ROOT / "scripts" / "contract_vectors.py"


def _load_script() -> Any:
    """scripts/contract_vectors.py as a module (it is the writer's side of the check)."""
    spec = importlib.util.spec_from_file_location("contract_vectors", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def vectors() -> list[dict[str, str]]:
    return list(json.loads(VECTORS.read_text())["vectors"])


@pytest.fixture(scope="module")
def writer_class() -> Callable[[dict[str, str]], type[Message]]:
    """The class that wrote a vector: the generated one, or the next release's."""
    script = _load_script()
    current = {cls.DESCRIPTOR.full_name: cls for cls in script.current_types()}
    baseline = descriptor_pb2.FileDescriptorSet.FromString(BASELINE.read_bytes())
    evolved = script.evolved_pool(baseline)

    def cls(vector: dict[str, str]) -> type[Message]:
        if vector["reader"] == "current":
            return current[vector["type"]]
        return message_factory.GetMessageClass(evolved.FindMessageTypeByName(vector["type"]))

    return cls


def baseline_class(name: str) -> type[Message]:
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(BASELINE.read_bytes()).file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def check_answers(
    vectors: list[dict[str, str]],
    answers: list[dict[str, str]],
    writer_class: Callable[[dict[str, str]], type[Message]],
    reader: str,
) -> None:
    by_id = {a["id"]: a for a in answers}
    problems: list[str] = []
    for v in vectors:
        answer = by_id.get(v["id"])
        if answer is None or answer.get("error"):
            problems.append(f"{v['id']}: {(answer and answer.get('error')) or 'no answer'}")
            continue
        sent, got = base64.b64decode(v["wire"]), base64.b64decode(answer.get("wire", ""))
        cls = writer_class(v)
        if cls.FromString(got) != cls.FromString(sent):
            problems.append(f"{v['id']}: {reader} changed the message")
        elif got != sent:
            problems.append(f"{v['id']}: same message, other bytes ({got.hex()} != {sent.hex()})")
    assert not problems, f"{len(problems)} of {len(vectors)} vectors:\n" + "\n".join(problems)


def test_vectors_are_fresh() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


def test_vectors_cover_every_message_type_and_variant(vectors: list[dict[str, str]]) -> None:
    script = _load_script()
    types = {cls.DESCRIPTOR.full_name for cls in script.current_types()}
    ids = {v["id"] for v in vectors}
    assert {f"{t}/{variant}" for t in types for variant in script.VARIANTS} <= ids
    released = [v for v in vectors if v["reader"] == "baseline"]
    assert released and all(script.ADDED_FIELD in v["text"] for v in released)


def test_python_round_trip(vectors: list[dict[str, str]], writer_class: Any) -> None:
    """Python reads each vector with the generated code, or as the last release did."""
    answers = []
    for v in vectors:
        cls = writer_class(v) if v["reader"] == "current" else baseline_class(v["type"])
        msg = cls.FromString(base64.b64decode(v["wire"]))
        wire = msg.SerializeToString(deterministic=True)
        answers.append({"id": v["id"], "wire": base64.b64encode(wire).decode()})
    check_answers(vectors, answers, writer_class, "python")


def test_old_reader_keeps_what_a_new_writer_added(vectors: list[dict[str, str]]) -> None:
    """The release's reader sees the new field as unknown, and the new enum value as a
    number it has no name for, and writes both back."""
    v = next(v for v in vectors if v["id"] == "shop.order.v1.Order/next-release")
    old = baseline_class("shop.order.v1.Order").FromString(base64.b64decode(v["wire"]))
    fields = old.DESCRIPTOR.fields_by_name
    assert "added_in_next_release" not in fields
    unknown = [f.field_number for f in unknown_fields.UnknownFieldSet(old)]
    assert unknown == [max(f.number for f in fields.values()) + 1]
    assert old.status not in fields["status"].enum_type.values_by_number  # type: ignore[attr-defined]
    assert old.SerializeToString(deterministic=True) == base64.b64decode(v["wire"])


def run_reader(command: list[str]) -> list[dict[str, str]]:
    out = subprocess.run(
        [*command, str(VECTORS), str(BASELINE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout)["results"])


def test_go_round_trip(
    vectors: list[dict[str, str]], writer_class: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_tools("go", what="the Go wire-vector reader")
    command = build_go(tmp_path_factory.mktemp("wire-go"), "wire-vectors")
    check_answers(vectors, run_reader(command), writer_class, "go")


def test_node_round_trip(
    vectors: list[dict[str, str]], writer_class: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_tools("node", "npm", what="the Node wire-vector reader")
    command = build_node(tmp_path_factory.mktemp("wire-node"), "wire-vectors")
    check_answers(vectors, run_reader(command), writer_class, "node")


def test_java_round_trip(
    vectors: list[dict[str, str]], writer_class: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_tools("java", "mvn", what="the Java wire-vector reader")
    jar = build_java(tmp_path_factory.mktemp("wire-java"))[-1]
    command = ["java", "-cp", jar, "meshkit.clients.WireVectors"]
    check_answers(vectors, run_reader(command), writer_class, "java")
