"""The AsyncAPI 3.0 document of the streams: served, valid for @asyncapi/parser, and made
from the code's own constants (close codes, message codes, the binary header)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from neurogate_client import wire

from neurogate.gateway.app import create_app
from neurogate.gateway.asyncapi import build_document, error_codes, frame_layout
from neurogate.gateway.state import build_gateway
from neurogate.settings import Settings
from tests.clients.contract import problems
from tests.conftest import skip_or_fail
from tests.gateway.conftest import FAST_HASHING

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"
GATEWAY_SOURCES = ROOT / "neurogate" / "gateway"
# The modules that write the messages of the two stream endpoints.
STREAM_MODULES = ("routes/streams.py", "streams.py", "egress.py", "security.py", "deps.py")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        skip_or_fail("Node.js is not installed (the AsyncAPI parser runs on it)")
    if not (NODE_DIR / "node_modules" / "@asyncapi" / "parser").is_dir():
        skip_or_fail("tests/node/node_modules has no @asyncapi/parser; run `make node-peers`")
    assert node is not None
    return node


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, dict]:
    """One run of the parser on the document and on a broken copy of it: the exit code,
    and the summary of each."""
    node = _node()
    folder = tmp_path_factory.mktemp("asyncapi")
    good, broken = build_document(), build_document()
    broken["channels"]["ingest"]["messages"]["hello"] = {"$ref": "#/components/messages/nope"}
    paths = []
    for name, document in (("good", good), ("broken", broken)):
        paths.append(folder / f"{name}.json")
        paths[-1].write_text(json.dumps(document), encoding="utf-8")
    done = subprocess.run([node, str(NODE_DIR / "validate_asyncapi.mjs"), *map(str, paths)],
                          capture_output=True, text=True, timeout=60, check=False)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 2, done.stdout + done.stderr
    return done.returncode, lines[0], lines[1]


def test_asyncapi_served_at_its_path_and_linked_from_docs(tmp_path: Path) -> None:
    """/asyncapi.json serves the built document for the request's host; /docs links it."""
    gateway = build_gateway(Settings(data_dir=tmp_path, environment="test", **FAST_HASHING))
    with TestClient(create_app(gateway=gateway), base_url="https://testserver") as client:
        served = client.get("/asyncapi.json")
        docs = client.get("/docs")
    assert served.status_code == 200, served.text
    assert served.json() == build_document(host="testserver", secure=True)
    assert served.json()["servers"]["gateway"]["protocol"] == "wss"
    assert '<a href="/asyncapi.json">/asyncapi.json</a>' in docs.text


def test_asyncapi_document_validates_with_the_asyncapi_parser(
        parsed: tuple[int, dict, dict]) -> None:
    """@asyncapi/parser reads the document as AsyncAPI 3.0.0 with no error."""
    _, summary, _ = parsed
    assert (summary["valid"], summary["errors"]) == (True, [])
    assert summary["version"] == "3.0.0"
    assert sorted(summary["channels"]) == ["ingest", "subscribe"]
    assert {"hello", "welcome", "error", "deviceFrame", "subscribed", "refused", "data",
            "productFrame", "gap", "revoked", "bye"} == set(summary["messages"])


def test_asyncapi_parser_rejects_a_broken_document(parsed: tuple[int, dict, dict]) -> None:
    """The parser check can fail: a dangling message reference is an error (exit 1)."""
    code, _, broken = parsed
    assert code == 1
    assert broken["valid"] is False and broken["errors"]


def test_asyncapi_close_codes_are_the_protocols() -> None:
    """Each channel's x-close-codes come from wire.CLOSE_CODES; together they hold every
    CloseCode, and each says whether reconnecting helps."""
    channels = build_document()["channels"]
    listed = {row["code"]: row for ch in channels.values() for row in ch["x-close-codes"]}
    declared = {v for k, v in vars(wire.CloseCode).items() if k.isupper()}
    assert declared <= set(listed)
    for code, row in listed.items():
        assert (row["name"], row["reconnect"]) == (wire.CLOSE_CODES[code].name,
                                                   wire.CLOSE_CODES[code].retry)
    assert listed[wire.CloseCode.REVOKED]["reconnect"] is False
    assert wire.CloseCode.REVOKED not in {r["code"] for r in channels["ingest"]["x-close-codes"]}


def _code_literals() -> set[str]:
    """Every string given as ``"code": ...`` in a dict literal of the stream modules."""
    found: set[str] = set()
    for path in (GATEWAY_SOURCES / name for name in STREAM_MODULES):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (isinstance(key, ast.Constant) and key.value == "code"
                            and isinstance(value, ast.Constant) and isinstance(value.value, str)):
                        found.add(value.value)
    return found


def test_asyncapi_error_codes_cover_every_code_the_gateway_writes() -> None:
    """Every literal message code of the stream modules is in the error message's enum."""
    literals = _code_literals()
    assert {"sequence_gap", "unpaired", "store_unavailable", "rate_limited"} <= literals
    assert literals - set(error_codes()) == set()


def test_asyncapi_frame_layout_matches_the_codec() -> None:
    """The documented binary header adds up to the codec's header, field by field."""
    rows = frame_layout()
    assert [r["field"] for r in rows][:3] == ["magic", "version", "kind"]
    assert rows[-1]["offset"] == wire.HEADER_SIZE == 24
    assert sum(r["size"] for r in rows[:-1]) == wire.HEADER.size
    frame = wire.encode_frame(wire.np.ones((2, 3)), sequence=7, timestamp=1.5)
    header = wire.decode_header(frame)
    by_name = {r["field"]: r for r in rows}
    seq = by_name["sequence"]
    assert int.from_bytes(frame[seq["offset"]:seq["offset"] + seq["size"]], "little") == 7
    assert header.sequence == 7


@pytest.mark.parametrize(("endpoint", "message", "valid"), [
    ("ingest", {"type": "welcome", "protocol": 1, "stream": "s1", "max_frame_bytes": 1 << 20,
                "notes": {}}, True),
    ("ingest", {"type": "error", "code": "sequence_gap", "sequence": 5, "missing": 2,
                "message": "Frames 3 to 4 never arrived; the stream continues."}, True),
    ("ingest", {"type": "welcome", "protocol": 2, "stream": "s1",
                "max_frame_bytes": 1 << 20}, False),
    ("ingest", {"type": "error", "code": "made_up", "message": "x"}, False),
    ("subscribe", {"type": "gap", "dropped": 3}, True),
    ("subscribe", {"type": "gap", "dropped": "3"}, False),
    ("subscribe", {"type": "data", "product": "raw", "seq": 1, "t": 1.0, "labels": ["C3"],
                   "columns": [], "window_s": 0.004, "rate_hz": 250.0, "data": [[0.0]]}, True),
    ("subscribe", {"type": "data", "product": "raw", "seq": 1, "t": 1.0}, False),
    ("subscribe", {"type": "welcome", "protocol": 1, "stream": "s1",
                   "max_frame_bytes": 1 << 20}, False),
    ("subscribe", {"type": "revoked", "reason": "consent.revoked",
                   "reasons": ["consent.revoked"], "explanations": ["..."]}, True),
])
def test_asyncapi_schemas_accept_the_protocol_and_reject_others(endpoint: str, message: dict,
                                                                valid: bool) -> None:
    """The schemas the end-to-end tests check against accept real messages and reject
    a wrong version, an unknown code, a wrong type and a message of the other endpoint."""
    assert (problems(endpoint, message) == []) is valid
