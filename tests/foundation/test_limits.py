"""``racklet.limits``: the one body parser every listener uses, on the inputs that break naive
ones (brackets inside strings, escaped quotes, aliases, non-finite numbers)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from racklet.limits import InputRejected, Limits, parse_json, parse_yaml


def _status(call: object, *args: object, **kwargs: object) -> int:
    with pytest.raises(InputRejected) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value.status


def test_depth_is_counted_outside_strings_only() -> None:
    tricky = {"a": "[[[[{{{{" * 100, "b": 'q\\"[[[', "c": "\\\\", "d": [[[["x"]]]]}
    assert parse_json(json.dumps(tricky)) == tricky
    assert parse_json(b"[" * 32 + b"]" * 32) is not None
    assert _status(parse_json, b"[" * 33 + b"]" * 33) == 400
    assert (
        _status(parse_json, b'{"a":' * 17 + b'[{"b":' * 16 + b"1" + b"}]" * 16 + b"}" * 17) == 400
    )
    assert _status(parse_json, b"[" * 100_000) == 400  # refused before the parser recurses


def test_non_finite_numbers_are_422_and_size_is_413() -> None:
    for text in ("NaN", "Infinity", "-Infinity", "1e999", "[1, -1e400]"):
        assert _status(parse_json, text) == 422
    assert parse_json("1e308") == 1e308
    assert _status(parse_json, b" " * 11, max_bytes=10) == 413
    assert _status(parse_json, "[" + "1," * 20 + "1]", limits=Limits(max_values=20)) == 413
    assert _status(parse_json, '["é"]'.encode("utf-16")) == 400  # JSON is UTF-8
    assert _status(parse_json, "9" * 5000) == 400
    assert parse_json(b"  ") is None


def test_yaml_refuses_aliases_and_keeps_to_json_types() -> None:
    assert _status(parse_yaml, "a: &x [1, 2]\nb: *x\n") == 400
    assert _status(parse_yaml, "base: &b {x: 1}\nother:\n  <<: *b\n") == 400
    assert _status(parse_yaml, "w: .inf\n") == 422
    assert _status(parse_yaml, "w: .NaN\n") == 422
    assert _status(parse_yaml, "b: !!binary aGk=\n") == 400
    assert _status(parse_yaml, "{1: a}\n") == 400
    assert _status(parse_yaml, "- " * 33 + "x\n") == 400
    assert _status(parse_yaml, "[" * 5000) == 400
    assert _status(parse_yaml, "a: 1\n---\nb: 2\n") == 400
    assert _status(parse_yaml, b"x" * 300_000) == 413
    assert parse_yaml("when: 2024-01-01\nanchor: &a only\n") == {
        "when": "2024-01-01",
        "anchor": "only",
    }


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(alphabet=st.sampled_from('[]{}"\\,:ab é'), max_size=12),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.text(alphabet=st.sampled_from('[]{}"\\ab'), max_size=6), inner, max_size=4
            )
        ),
        max_leaves=30,
    )
)
def test_whatever_json_says_parse_json_reads_the_same(value: object) -> None:
    text = json.dumps(value)
    depth_ok = _depth(value) <= Limits().max_depth
    if depth_ok:
        assert parse_json(text) == value
    else:
        assert _status(parse_json, text) == 400


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0
