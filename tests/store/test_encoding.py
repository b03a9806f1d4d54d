"""The tagged value encoding of the SQLite store."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttauth.mqtt.constants import PropertyId
from mqttauth.store.encoding import (
    EncodingError,
    decode_properties,
    decode_value,
    encode_properties,
    encode_value,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec=None))
    | st.binary()
)
hashable = st.none() | st.booleans() | st.integers() | st.text() | st.binary()
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children)
        | st.lists(children).map(tuple)
        | st.dictionaries(hashable, children)
    ),
    max_leaves=30,
)


def same_types(left: Any, right: Any) -> bool:
    """Return whether two equal values also have the same types throughout."""
    if type(left) is not type(right):
        return False
    if isinstance(left, (list, tuple)):
        return all(same_types(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        return all(same_types(left[key], right[key]) for key in left)
    return True


@given(values)
def test_value_round_trip(value: Any) -> None:
    assert decode_value(encode_value(value)) == value


@given(values)
def test_value_keeps_types(value: Any) -> None:
    assert same_types(decode_value(encode_value(value)), value)


@given(st.binary())
def test_random_bytes_raise_encoding_error(data: bytes) -> None:
    try:
        decode_value(data)
    except EncodingError:
        pass


@given(values)
def test_truncated_raises_encoding_error(value: Any) -> None:
    encoded = encode_value(value)
    for end in range(len(encoded)):
        with pytest.raises(EncodingError):
            decode_value(encoded[:end])


@pytest.mark.parametrize(
    ("number", "encoded"),
    [
        (0, b"\x03\x00"),
        (-1, b"\x03\x01"),
        (1, b"\x03\x02"),
        (63, b"\x03\x7e"),
        (64, b"\x03\x80\x01"),
        (2**64, b"\x03\x80\x80\x80\x80\x80\x80\x80\x80\x80\x04"),
    ],
)
def test_int_vectors(number: int, encoded: bytes) -> None:
    assert encode_value(number) == encoded


def test_memoryview_reads_back_as_bytes() -> None:
    assert decode_value(encode_value(memoryview(b"abc"))) == b"abc"


def test_unsupported_type_raises() -> None:
    with pytest.raises(EncodingError, match="set"):
        encode_value({1, 2})


def test_trailing_bytes_raise() -> None:
    with pytest.raises(EncodingError, match="left after"):
        decode_value(encode_value(1) + b"\x00")


def test_empty_properties_encode_empty() -> None:
    assert encode_properties({}) == b""


def test_properties_keys_become_property_ids() -> None:
    decoded = decode_properties(encode_properties({0x03: "text/plain", 0x7F: 1}))
    assert [type(key) for key in decoded] == [PropertyId, int]


def test_properties_user_property_pairs() -> None:
    properties = {PropertyId.USER_PROPERTY: [("k", "v"), ("k", "w")]}
    decoded = decode_properties(encode_properties(properties))
    assert decoded[PropertyId.USER_PROPERTY] == [("k", "v"), ("k", "w")]
    assert type(decoded[PropertyId.USER_PROPERTY][0]) is tuple
