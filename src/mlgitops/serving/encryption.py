"""Encryption at rest of the packaged model: AES-256-GCM with a key from the environment.

The key is 32 random bytes written as 64 hexadecimal characters (`openssl rand -hex 32`).
An encrypted model is stored as a 12-byte random nonce followed by the AES-GCM ciphertext and
its tag; the associated data is the model's md5 as `dvc.lock` records it, so the ciphertext of
another model (or another version of it) fails authentication even under the same key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

ALGORITHM = "AES-256-GCM"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_PATTERN = re.compile(rf"[0-9a-fA-F]{{{2 * KEY_BYTES}}}")


class ModelKeyError(ValueError):
    """The model key in the environment is not 64 hexadecimal characters."""


class ModelDecryptionError(RuntimeError):
    """The encrypted model cannot be decrypted: the key is missing or wrong, or it was altered."""


def model_key(name: str, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The AES-256 key held by the environment variable `name`.

    Surrounding whitespace is ignored (a key read from a file often ends with a newline).

    Returns:
        The 32-byte key, or None when the variable is unset or empty.

    Raises:
        ModelKeyError: naming the variable, the expected format and what it holds instead
            (its length and how many characters are not hexadecimal, never the key itself).
    """
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return None
    if not KEY_PATTERN.fullmatch(text):
        not_hex = sum(1 for char in text if char not in "0123456789abcdefABCDEF")
        raise ModelKeyError(
            f"{name} must be {2 * KEY_BYTES} hexadecimal characters (a {KEY_BYTES}-byte key, "
            f"e.g. from `openssl rand -hex {KEY_BYTES}`), got {len(text)} characters, "
            f"{not_hex} of them not hexadecimal"
        )
    return bytes.fromhex(text)


def encrypt_model(plaintext: bytes, key: bytes, *, model_md5: str) -> bytes:
    """The model's bytes encrypted with AES-256-GCM: nonce, then ciphertext and tag.

    Args:
        plaintext: The model file's bytes.
        key: A 32-byte key, as `model_key` returns it.
        model_md5: The model's md5 from `dvc.lock`, bound to the ciphertext as associated data.
    """
    # Imported here so that serving an unencrypted model does not need `cryptography`.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(key) != KEY_BYTES:
        raise ModelKeyError(f"an {ALGORITHM} key has {KEY_BYTES} bytes, got {len(key)}")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, model_md5.encode("ascii"))


def decrypt_model(encrypted: bytes, key: bytes | None, *, model_md5: str, key_env: str) -> bytes:
    """The plaintext of `encrypt_model`'s output, in memory only.

    Args:
        encrypted: Nonce, ciphertext and tag, as `encrypt_model` wrote them.
        key: The key from `key_env`, or None when it is not set.
        model_md5: The md5 the model was packaged with (the associated data).
        key_env: The variable's name, for the error message.

    Raises:
        ModelDecryptionError: when the key is missing or wrong, or the bytes were altered or
            encrypted for another model.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    prefix = f"cannot decrypt the packaged model: wrong or missing {key_env}"
    if key is None:
        raise ModelDecryptionError(
            f"{prefix} (it is not set, and the model was packaged encrypted; set it to the key "
            "the model was packaged with)"
        )
    if len(encrypted) < NONCE_BYTES + TAG_BYTES:
        raise ModelDecryptionError(
            f"cannot decrypt the packaged model: {len(encrypted)} bytes is shorter than a "
            f"nonce and a tag ({NONCE_BYTES + TAG_BYTES} bytes); package the model again"
        )
    nonce, ciphertext = encrypted[:NONCE_BYTES], encrypted[NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, model_md5.encode("ascii"))
    except InvalidTag:
        raise ModelDecryptionError(
            f"{prefix} ({ALGORITHM} authentication failed: the key is not the one the model "
            "was packaged with, or the encrypted file was altered or belongs to another model)"
        ) from None
