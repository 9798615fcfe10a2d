"""Reading JSON lines and keying raw records."""

from __future__ import annotations

from services.emit import jsonl_lines, raw_key
from tests.support.events import dumps, example


def test_lines_are_numbered_and_blank_lines_skipped() -> None:
    chunks = [b'{"a":1}\n', b"\n", b"   \n", b'{"b":2}\r\n', b"tail"]
    assert list(jsonl_lines(chunks)) == [(1, b'{"a":1}'), (4, b'{"b":2}'), (5, b"tail")]


def test_raw_key_is_the_strongest_identifier() -> None:
    assert raw_key(dumps(example("web.add_to_cart"))) == b"customer_id:cus-1042"
    login = example("web.login", identity={"anonymous_id": "a", "email": "Ana@X.com"})
    assert raw_key(dumps(login)) == b"email:ana@x.com"


def test_unparseable_payloads_are_sent_unkeyed() -> None:
    assert raw_key(b"not json") is None
    assert raw_key(b"[1]") is None
    assert raw_key(b'{"identity": "me"}') is None
    assert raw_key(b'{"identity": {}}') is None
