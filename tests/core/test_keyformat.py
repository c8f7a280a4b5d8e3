"""The key string format: generate() is always well-formed, the CRC32 checksum catches every
single-character change, and the parts round-trip; the keyed hash depends on the secret."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llavero.core import keyformat

prefixes = st.from_regex(keyformat.PREFIX_PATTERN, fullmatch=True)
random_parts = st.text(alphabet=keyformat.ALPHABET, min_size=32, max_size=32)


def assemble(prefix: str, random_part: str) -> str:
    return f"{prefix}_{random_part}{keyformat.checksum(prefix, random_part)}"


@given(prefixes)
def test_generate_is_always_well_formed(prefix: str) -> None:
    key = keyformat.generate(prefix)
    assert keyformat.is_well_formed(key, prefix)
    assert len(key) == len(prefix) + 1 + keyformat.BODY_LENGTH
    assert set(key[len(prefix) + 1 :]) <= set(keyformat.ALPHABET)


@given(prefixes, random_parts)
def test_parts_round_trip(prefix: str, random_part: str) -> None:
    key = assemble(prefix, random_part)
    assert keyformat.is_well_formed(key, prefix)
    head, _, body = key.partition("_")
    assert head == prefix
    assert body[: keyformat.RANDOM_LENGTH] == random_part
    assert body[keyformat.RANDOM_LENGTH :] == keyformat.checksum(prefix, random_part)
    assert keyformat.last4(key) == key[-4:]


@given(random_parts, st.data())
def test_checksum_catches_every_single_character_change(
    random_part: str, data: st.DataObject
) -> None:
    key = assemble("llv", random_part)
    position = data.draw(st.integers(0, len(key) - 1), label="position")
    replacement = data.draw(
        st.sampled_from(keyformat.ALPHABET + "_-+/=").filter(lambda char: char != key[position]),
        label="replacement",
    )
    changed = key[:position] + replacement + key[position + 1 :]
    assert not keyformat.is_well_formed(changed, "llv")


def test_every_substitution_of_one_key_is_caught() -> None:
    """Exhaustive for one key: each of its 42 positions, each other base62 character."""
    key = keyformat.generate("llv")
    for position in range(len(key)):
        for char in keyformat.ALPHABET:
            if char != key[position]:
                changed = key[:position] + char + key[position + 1 :]
                assert not keyformat.is_well_formed(changed, "llv"), (position, char)


@given(random_parts)
def test_wrong_prefix_truncation_and_extension_are_malformed(random_part: str) -> None:
    key = assemble("llv", random_part)
    assert not keyformat.is_well_formed(key, "abc")
    assert not keyformat.is_well_formed(key[:-1], "llv")
    assert not keyformat.is_well_formed(key + "A", "llv")
    assert not keyformat.is_well_formed(" " + key, "llv")
    assert not keyformat.is_well_formed(key.replace("_", "-", 1), "llv")


@given(st.text(max_size=60))
def test_arbitrary_text_is_only_well_formed_with_a_valid_checksum(text: str) -> None:
    if keyformat.is_well_formed(text, "llv"):
        assert text == assemble("llv", text[4:36])


@pytest.mark.parametrize("prefix", ["", "Llv", "1ab", "a_b", "a" * 17])
def test_generate_refuses_bad_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        keyformat.generate(prefix)


def test_keys_are_random() -> None:
    assert len({keyformat.generate("llv") for _ in range(200)}) == 200


@given(random_parts)
def test_hash_is_keyed_stable_and_not_the_key(random_part: str) -> None:
    key = assemble("llv", random_part)
    first = keyformat.KeyHasher(b"0123456789abcdef-one")
    again = keyformat.KeyHasher(b"0123456789abcdef-one")
    other = keyformat.KeyHasher(b"0123456789abcdef-two")
    digest = first.hash(key)
    assert digest == again.hash(key)
    assert digest != other.hash(key)
    assert len(digest) == 64
    assert random_part not in digest


def test_hasher_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        keyformat.KeyHasher(b"short")


def test_the_stored_hash_is_keyed_blake2b_of_the_key_string() -> None:
    """Hashes in databases made by any release must still match: keyed BLAKE2b-256 with the
    BLAKE2b-512 of the secret as its key, whatever the way the hasher computes it."""
    secret, key = b"a secret of at least 16 bytes", "llv_" + "x" * 38
    expected = hashlib.blake2b(
        key.encode(), key=hashlib.blake2b(secret, digest_size=64).digest(), digest_size=32
    )
    hasher = keyformat.KeyHasher(secret)

    assert [hasher.hash(key), hasher.hash(key)] == [expected.hexdigest()] * 2
    assert hasher.digest(key) == expected.digest()
    assert hasher.hash(key + "y") != expected.hexdigest()
