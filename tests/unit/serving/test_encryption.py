"""Encryption at rest of the packaged model: AES-256-GCM round trip, keys and every refusal."""

from __future__ import annotations

import io
import logging
import re

import joblib
import pytest

from mlgitops.serving.encryption import (
    ALGORITHM,
    NONCE_BYTES,
    ModelDecryptionError,
    ModelKeyError,
    decrypt_model,
    encrypt_model,
    model_key,
)
from mlgitops.serving.package import (
    ENCRYPTED_MODEL_FILE,
    ENCRYPTION_METADATA,
    MODEL_FILE,
    bytes_md5,
)
from mlgitops.serving.store import ModelIntegrityError, read_model, verify_model_bytes

KEY_ENV = "MLGITOPS_MODEL_KEY"
KEY_HEX = bytes(range(32)).hex()
OTHER_KEY_HEX = bytes(range(100, 132)).hex()
NO_KEY_MESSAGE = f"cannot decrypt the packaged model: wrong or missing {KEY_ENV}"


@pytest.fixture
def model_bytes() -> bytes:
    """A small joblib file's bytes, standing in for the trained pipeline."""
    buffer = io.BytesIO()
    joblib.dump({"estimator": "stand-in", "classes": ["a", "b"]}, buffer)
    return buffer.getvalue()


def encrypted_package(folder, model_bytes: bytes, key_hex: str = KEY_HEX) -> dict[str, str]:
    """A model store folder as `mlgitops package` writes it with a key; its metadata."""
    key = bytes.fromhex(key_hex)
    sealed = encrypt_model(model_bytes, key, model_md5=bytes_md5(model_bytes))
    (folder / ENCRYPTED_MODEL_FILE).write_bytes(sealed)
    return {ENCRYPTION_METADATA: ALGORITHM}


def test_round_trip_gives_back_the_model_and_hides_it(model_bytes):
    # Given a model encrypted twice with the same key, then each ciphertext has a fresh nonce,
    # neither contains the plaintext, and decrypting gives back a loadable model.
    key, md5 = bytes.fromhex(KEY_HEX), bytes_md5(model_bytes)
    first = encrypt_model(model_bytes, key, model_md5=md5)
    second = encrypt_model(model_bytes, key, model_md5=md5)
    assert first[:NONCE_BYTES] != second[:NONCE_BYTES], "the nonce was reused"
    assert model_bytes not in first, "the ciphertext contains the plaintext"
    plaintext = decrypt_model(first, key, model_md5=md5, key_env=KEY_ENV)
    assert plaintext == model_bytes, "decryption did not give back the model's bytes"
    assert joblib.load(io.BytesIO(plaintext))["classes"] == ["a", "b"], "not loadable"


def test_wrong_key_is_refused_naming_the_variable(model_bytes):
    # Given a model encrypted with one key, when decrypted with another, then it is refused
    # with a message naming the key's variable.
    md5 = bytes_md5(model_bytes)
    sealed = encrypt_model(model_bytes, bytes.fromhex(KEY_HEX), model_md5=md5)
    with pytest.raises(ModelDecryptionError, match=NO_KEY_MESSAGE):
        decrypt_model(sealed, bytes.fromhex(OTHER_KEY_HEX), model_md5=md5, key_env=KEY_ENV)


@pytest.mark.parametrize("position", [0, NONCE_BYTES, -1], ids=["nonce", "ciphertext", "tag"])
def test_tampered_ciphertext_is_refused(model_bytes, position):
    # Given an encrypted model with one bit flipped in its nonce, ciphertext or tag, when
    # decrypted with the right key, then authentication fails.
    md5 = bytes_md5(model_bytes)
    sealed = bytearray(encrypt_model(model_bytes, bytes.fromhex(KEY_HEX), model_md5=md5))
    sealed[position] ^= 0x01
    with pytest.raises(ModelDecryptionError, match="authentication failed"):
        decrypt_model(bytes(sealed), bytes.fromhex(KEY_HEX), model_md5=md5, key_env=KEY_ENV)


def test_ciphertext_of_another_model_is_refused(model_bytes):
    # Given a file swapped for another model's ciphertext under the same key, when decrypted
    # as the model whose md5 was recorded, then the associated data does not match.
    other = model_bytes + b"another model"
    key = bytes.fromhex(KEY_HEX)
    swapped = encrypt_model(other, key, model_md5=bytes_md5(other))
    with pytest.raises(ModelDecryptionError, match="belongs to another model"):
        decrypt_model(swapped, key, model_md5=bytes_md5(model_bytes), key_env=KEY_ENV)


def test_truncated_file_is_refused(model_bytes):
    # Given an encrypted file cut shorter than a nonce and a tag, then the error says so.
    with pytest.raises(ModelDecryptionError, match="shorter than a nonce and a tag"):
        decrypt_model(b"short", bytes.fromhex(KEY_HEX), model_md5="0" * 32, key_env=KEY_ENV)


@pytest.mark.parametrize(
    ("value", "received"),
    [
        (KEY_HEX[:-2], "got 62 characters, 0 of them not hexadecimal"),
        (KEY_HEX + "ab", "got 66 characters, 0 of them not hexadecimal"),
        ("z" + KEY_HEX[1:], "got 64 characters, 1 of them not hexadecimal"),
        ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "got 44 characters"),
        (" ".join(KEY_HEX[i : i + 2] for i in range(0, 64, 2)), "got 95 characters"),
    ],
    ids=["short", "long", "not-hex", "base64", "spaced"],
)
def test_malformed_key_names_the_variable_without_echoing_it(value, received):
    # Given a key of the wrong length or alphabet, then the error names the variable, the
    # expected format and what was received, and never contains the key itself.
    with pytest.raises(ModelKeyError) as raised:
        model_key(KEY_ENV, {KEY_ENV: value})
    message = str(raised.value)
    assert message.startswith(f"{KEY_ENV} must be 64 hexadecimal characters"), message
    assert received in message, message
    assert value[:16] not in message, "the key (or its start) was echoed"


def test_key_is_read_as_hex_ignoring_surrounding_whitespace():
    # Given a well-formed key, with a trailing newline as a file or secret often has, then it
    # is read as its 32 bytes; unset and empty both mean "no key".
    assert model_key(KEY_ENV, {KEY_ENV: KEY_HEX.upper() + "\n"}) == bytes(range(32)), "key"
    assert model_key(KEY_ENV, {}) is None, "an unset variable is not a key"
    assert model_key(KEY_ENV, {KEY_ENV: "  "}) is None, "an empty variable is not a key"


def test_encrypting_with_a_key_of_the_wrong_size_is_refused(model_bytes):
    # Given a 16-byte key (AES-128), then encryption refuses it rather than use a weaker cipher.
    with pytest.raises(ModelKeyError, match="has 32 bytes, got 16"):
        encrypt_model(model_bytes, bytes(16), model_md5=bytes_md5(model_bytes))


def test_read_model_decrypts_an_encrypted_package_in_memory(tmp_path, model_bytes):
    # Given a store folder holding only the encrypted file, when read with the right key,
    # then the model's plaintext comes back and no plaintext file was written.
    metadata = encrypted_package(tmp_path, model_bytes)
    plaintext = read_model(
        tmp_path,
        metadata,
        expected_md5=bytes_md5(model_bytes),
        key_env=KEY_ENV,
        environ={KEY_ENV: KEY_HEX},
    )
    assert plaintext == model_bytes, "the decrypted model differs"
    assert [p.name for p in tmp_path.iterdir()] == [ENCRYPTED_MODEL_FILE], "a file was written"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "it is not set, and the model was packaged encrypted"),
        ({KEY_ENV: OTHER_KEY_HEX}, "authentication failed"),
    ],
    ids=["no-key", "wrong-key"],
)
def test_read_model_refuses_an_encrypted_package_without_its_key(
    tmp_path, model_bytes, environ, expected
):
    # Given an encrypted package, when read with no key or another key, then the error is the
    # one the server's log shows, naming the variable.
    metadata = encrypted_package(tmp_path, model_bytes)
    with pytest.raises(ModelDecryptionError, match=NO_KEY_MESSAGE) as raised:
        read_model(
            tmp_path,
            metadata,
            expected_md5=bytes_md5(model_bytes),
            key_env=KEY_ENV,
            environ=environ,
        )
    assert expected in str(raised.value), str(raised.value)


def test_read_model_checks_the_decrypted_model_against_its_md5(tmp_path, model_bytes):
    # Given an encrypted file that authenticates under the recorded md5 but whose plaintext
    # has another md5 (a faulty packager), then the integrity check still refuses it.
    recorded = bytes_md5(b"the reviewed model")
    sealed = encrypt_model(model_bytes, bytes.fromhex(KEY_HEX), model_md5=recorded)
    (tmp_path / ENCRYPTED_MODEL_FILE).write_bytes(sealed)
    with pytest.raises(ModelIntegrityError, match=f"but was packaged as {recorded}"):
        read_model(
            tmp_path,
            {ENCRYPTION_METADATA: ALGORITHM},
            expected_md5=recorded,
            key_env=KEY_ENV,
            environ={KEY_ENV: KEY_HEX},
        )


def test_read_model_refuses_a_malformed_key_for_an_encrypted_package(tmp_path, model_bytes):
    # Given an encrypted package and a key that is not hexadecimal, then the key's format is
    # the error, not a failed decryption.
    metadata = encrypted_package(tmp_path, model_bytes)
    with pytest.raises(ModelKeyError, match=f"{KEY_ENV} must be 64 hexadecimal characters"):
        read_model(
            tmp_path,
            metadata,
            expected_md5=bytes_md5(model_bytes),
            key_env=KEY_ENV,
            environ={KEY_ENV: "not-a-key"},
        )


@pytest.mark.parametrize("metadata", [{}, {ENCRYPTION_METADATA: "none"}], ids=["older", "plain"])
def test_read_model_serves_an_unencrypted_package_without_a_key(
    tmp_path, model_bytes, metadata, caplog
):
    # Given a plaintext package (recorded as such, or from before encryption existed) and no
    # key, then the model is read as stored and nothing is warned.
    (tmp_path / MODEL_FILE).write_bytes(model_bytes)
    with caplog.at_level(logging.WARNING):
        plaintext = read_model(
            tmp_path, metadata, expected_md5=bytes_md5(model_bytes), key_env=KEY_ENV, environ={}
        )
    assert plaintext == model_bytes, "the plaintext model differs"
    assert not caplog.records, f"unexpected warnings: {caplog.messages}"


def test_read_model_warns_when_a_key_is_set_for_an_unencrypted_package(
    tmp_path, model_bytes, caplog
):
    # Given a plaintext package and a key in the environment, then the model is served as
    # stored and a warning says the package is not encrypted, without the key.
    (tmp_path / MODEL_FILE).write_bytes(model_bytes)
    with caplog.at_level(logging.WARNING):
        plaintext = read_model(
            tmp_path,
            {ENCRYPTION_METADATA: "none"},
            expected_md5=bytes_md5(model_bytes),
            key_env=KEY_ENV,
            environ={KEY_ENV: KEY_HEX},
        )
    assert plaintext == model_bytes, "the plaintext model differs"
    assert any(
        f"{KEY_ENV} is set, but the packaged model is not encrypted" in m for m in caplog.messages
    ), f"no clear warning: {caplog.messages}"
    assert KEY_HEX not in caplog.text, "the key was logged"


def test_read_model_refuses_a_tampered_plaintext_package(tmp_path, model_bytes):
    # Given a plaintext package whose file changed after packaging, then the integrity error
    # names the file and both hashes, as for a file on disk.
    path = tmp_path / MODEL_FILE
    tampered = model_bytes + b"\0"
    path.write_bytes(tampered)
    recorded = bytes_md5(model_bytes)
    expected = f"{path} has md5 {bytes_md5(tampered)}, but was packaged as {recorded}"
    with pytest.raises(ModelIntegrityError, match=re.escape(expected)):
        read_model(tmp_path, {}, expected_md5=recorded, key_env=KEY_ENV, environ={})


def test_verify_model_bytes_names_the_source_and_both_hashes(model_bytes):
    # Given bytes in memory and a wrong expected md5, then the error names the source and both.
    md5 = bytes_md5(model_bytes)
    assert verify_model_bytes(model_bytes, md5, source="memory") == md5, "right md5 refused"
    with pytest.raises(ModelIntegrityError, match=f"memory has md5 {md5}, but was packaged as 0+"):
        verify_model_bytes(model_bytes, "0" * 32, source="memory")
