"""The model store entry the service serves: finding it, reading its metadata and its model.

`mlgitops package` writes the entry (serving/package.py); this module is its reader: the
packaged model's bytes, decrypted in memory and checked against the md5 recorded at packaging.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import yaml

from mlgitops.contract import ContractParams
from mlgitops.serving.encryption import decrypt_model, model_key
from mlgitops.serving.package import (
    ENCRYPTED_MODEL_FILE,
    ENCRYPTION_METADATA,
    MODEL_FILE,
    bytes_md5,
)
from mlgitops.serving.schema import Metadata
from mlgitops.serving.settings import ServeParams

logger = logging.getLogger(__name__)

SERVICE_NAME = "mlgitops"


class ModelNotPackaged(RuntimeError):
    """The BentoML model store has no packaged pipeline to serve."""


@dataclass(frozen=True)
class PackagedModel:
    """One entry of the model store as the service uses it."""

    tag: str
    version: str
    path: Path
    labels: dict[str, str]
    metadata: dict[str, Any]
    contract: ContractParams
    serve: ServeParams

    @classmethod
    def from_store(cls, stored: Any) -> PackagedModel:
        """The entry as read from a `bentoml.models.get` result."""
        metadata = dict(stored.info.metadata)
        return cls(
            tag=str(stored.tag),
            version=str(stored.tag.version),
            path=Path(stored.path),
            labels=dict(stored.info.labels),
            metadata=metadata,
            contract=ContractParams.model_validate(metadata["contract"]),
            serve=ServeParams.model_validate(metadata["serve"]),
        )

    @property
    def classes(self) -> list[str]:
        """The target's classes the model was trained on (empty for a regression)."""
        return list(self.metadata.get("classes") or [])

    def describe(self, bento: Any = None) -> Metadata:
        """What is deployed: code, model, data and params hashes, metrics and build times."""
        built_at = bento.info.creation_time.isoformat(timespec="seconds") if bento else None
        return Metadata(
            service=SERVICE_NAME,
            git_commit=self.labels.get("git_commit"),
            git_dirty=self.labels.get("git_dirty") == "true",
            model_md5=self.labels.get("model_md5"),
            data_md5=self.labels.get("data_md5"),
            params_sha256=self.labels.get("params_sha256"),
            model_tag=self.tag,
            model_version=self.version,
            bento_tag=str(bento.tag) if bento else None,
            build_time=built_at or self.metadata.get("packaged_at"),
            packaged_at=self.metadata.get("packaged_at"),
            metrics=self.metadata.get("metrics", {}),
            params=yaml.safe_load(self.metadata.get("params_yaml") or "{}"),
        )


def find_packaged_model(tag: str) -> PackagedModel:
    """The model store entry `tag`, with how to create it when it is missing.

    Raises:
        ModelNotPackaged: naming the store searched and the commands that fill it.
    """
    try:
        stored = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        from bentoml._internal.configuration.containers import BentoMLContainer

        raise ModelNotPackaged(
            f"model '{tag}' is not in the BentoML model store "
            f"({BentoMLContainer.model_store_dir.get()}). Build and package it first: "
            "`make repro && mlgitops package` (with the same BENTOML_HOME as this server)."
        ) from None
    return PackagedModel.from_store(stored)


class ModelIntegrityError(RuntimeError):
    """The packaged model file is not the one that was packaged: its md5 differs."""


def verify_model_bytes(data: bytes, expected_md5: str, *, source: str) -> str:
    """Check a packaged model's bytes against the md5 recorded when it was packaged.

    Args:
        data: The model file's plaintext (decrypted if need be).
        expected_md5: The md5 recorded at packaging (its `model_md5` label).
        source: What the bytes were read from, for the error message.

    Returns:
        The md5, equal to `expected_md5`.

    Raises:
        ModelIntegrityError: naming the source, both hashes and how to repackage.
    """
    md5 = bytes_md5(data)
    if md5 != expected_md5:
        raise ModelIntegrityError(
            f"{source} has md5 {md5}, but was packaged as {expected_md5}; "
            "package the model again with `mlgitops package`"
        )
    return md5


def read_model(
    folder: Path,
    metadata: Mapping[str, Any],
    *,
    expected_md5: str,
    key_env: str,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The packaged model's bytes, decrypted in memory when it was packaged encrypted.

    Args:
        folder: The model's folder in the BentoML model store.
        metadata: The model's metadata; `ENCRYPTION_METADATA` says whether it is encrypted.
        expected_md5: The md5 recorded when the model was packaged (its `model_md5` label).
        key_env: The environment variable holding the key (`serve.model_key_env`).
        environ: The environment to read the key from; the process's by default.

    Returns:
        The model file's plaintext, whose md5 is `expected_md5`.

    Raises:
        ModelKeyError: when the key is set but malformed.
        ModelDecryptionError: when the model is encrypted and the key is missing or wrong, or
            the encrypted file was altered or belongs to another model.
        ModelIntegrityError: when the plaintext's md5 differs from `expected_md5`.
    """
    environ = os.environ if environ is None else environ
    if metadata.get(ENCRYPTION_METADATA, "none") == "none":
        if environ.get(key_env, "").strip():
            logger.warning(
                "%s is set, but the packaged model is not encrypted: serving it as stored; "
                "run `mlgitops package` with %s set to store it encrypted",
                key_env,
                key_env,
            )
        path = folder / MODEL_FILE
        plaintext = path.read_bytes()
    else:
        path = folder / ENCRYPTED_MODEL_FILE
        plaintext = decrypt_model(
            path.read_bytes(),
            model_key(key_env, environ),
            model_md5=expected_md5,
            key_env=key_env,
        )
    verify_model_bytes(plaintext, expected_md5, source=str(path))
    return plaintext
