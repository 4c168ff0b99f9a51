"""Encryption at rest for provider secrets: ``cryptography``'s MultiFernet.

Keys come from ``settings.PESARAIL_ENCRYPTION_KEYS`` (a list of Fernet keys, newest
first), read at call time -- never at import -- so ``override_settings`` and key
rotation work without a restart of this module. The newest key encrypts; every key in
the list can decrypt. To rotate: put a new key first, run ``pesarail rotate-keys`` (which
re-encrypts every encrypted column under the newest key), then drop the old key.

Model fields:

* :class:`EncryptedJSONField` -- a JSON object, stored as one Fernet token in a text
  column (used for ``ProviderAccount.credentials``).
* :class:`EncryptedTextField` -- a string, stored as a Fernet token.

The database column only ever holds ciphertext. Lookups other than ``isnull`` make no
sense on ciphertext and are not supported.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

__all__ = [
    "DecryptionError",
    "EncryptedField",
    "EncryptedJSONField",
    "EncryptedTextField",
    "decrypt",
    "encrypt",
    "encrypted_fields",
    "is_current",
    "rotate",
]


class DecryptionError(Exception):
    """A stored value cannot be decrypted with any key in PESARAIL_ENCRYPTION_KEYS."""


def _configured_keys() -> tuple[str, ...]:
    keys = getattr(settings, "PESARAIL_ENCRYPTION_KEYS", None) or []
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    if not keys:
        raise ImproperlyConfigured(
            "PESARAIL_ENCRYPTION_KEYS is empty: set it to one or more Fernet keys "
            "(newest first); `pesarail generate-encryption-key` prints a new one."
        )
    return tuple(str(k) for k in keys)


@functools.lru_cache(maxsize=8)
def _fernets(keys: tuple[str, ...]) -> tuple[MultiFernet, Fernet]:
    built: list[Fernet] = []
    for index, key in enumerate(keys):
        try:
            built.append(Fernet(key))
        except (ValueError, TypeError):
            # Never echo the key itself.
            raise ImproperlyConfigured(
                f"PESARAIL_ENCRYPTION_KEYS[{index}] is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return MultiFernet(built), built[0]


def _multi() -> MultiFernet:
    return _fernets(_configured_keys())[0]


def encrypt(plaintext: str) -> str:
    """Encrypt ``plaintext`` under the newest key; returns a Fernet token (ASCII)."""
    if not isinstance(plaintext, str):
        raise TypeError("encrypt() takes a str")
    return _multi().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt a token made by :func:`encrypt` with any configured key."""
    try:
        return _multi().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError):
        raise DecryptionError(
            "cannot decrypt a stored secret with PESARAIL_ENCRYPTION_KEYS; was a key "
            "removed before `pesarail rotate-keys` re-encrypted the data?"
        ) from None


def is_current(token: str) -> bool:
    """True if ``token`` is already encrypted under the newest key."""
    newest = _fernets(_configured_keys())[1]
    try:
        newest.decrypt(token.encode("ascii"))
    except (InvalidToken, ValueError):
        return False
    return True


def rotate(token: str) -> str:
    """Re-encrypt ``token`` under the newest key (MultiFernet.rotate)."""
    try:
        return _multi().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError):
        raise DecryptionError("cannot decrypt a stored secret with any configured key") from None


if TYPE_CHECKING:
    _TextField = models.Field[Any, Any]
else:
    _TextField = models.TextField


class EncryptedField(_TextField):
    """Base for encrypted columns: subclasses turn Python values into a string
    (:meth:`encode_value`) and back (:meth:`decode_value`); this class encrypts that string.

    Values are decrypted when a row is loaded. ``None`` is stored as NULL (not
    encrypted) when the field is nullable.
    """

    def encode_value(self, value: Any) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode_value(self, text: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        return self.decode_value(decrypt(value))

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return encrypt(self.encode_value(value))

    def to_python(self, value: Any) -> Any:
        return value

    def value_to_string(self, obj: models.Model) -> str:
        # Serialisation (dumpdata) emits ciphertext, never plaintext.
        value = self.value_from_object(obj)
        return "" if value is None else encrypt(self.encode_value(value))


class EncryptedJSONField(EncryptedField):
    """A JSON object (dict) encrypted as one token. Default: ``{}``."""

    description = "Encrypted JSON object"
    _pyi_private_set_type: dict[str, Any]
    _pyi_private_get_type: dict[str, Any]

    def encode_value(self, value: Any) -> str:
        if not isinstance(value, dict):
            raise TypeError(f"{self.name} must be a dict, got {type(value).__name__}")
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def decode_value(self, text: str) -> Any:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise DecryptionError(f"{self.name}: decrypted value is not a JSON object")
        return data


class EncryptedTextField(EncryptedField):
    """A string encrypted as a token."""

    description = "Encrypted text"
    _pyi_private_set_type: str | None
    _pyi_private_get_type: str | None

    def encode_value(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{self.name} must be a str, got {type(value).__name__}")
        return value

    def decode_value(self, text: str) -> Any:
        return text


def encrypted_fields() -> Iterator[tuple[type[models.Model], EncryptedField]]:
    """Every (model, field) pair in installed apps that stores ciphertext."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedField):
                yield model, field
