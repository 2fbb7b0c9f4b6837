"""Signing model manifests (ed25519): key pairs, signatures, and where a private key may not live.

A signature vouches for a registry version's manifest (name, version, labels, input, the ONNX
file's sha256); the station checks it when its config requires signatures (see
``inspector.runtime.model_artifact`` for the format, which this module only writes).

Keys: ``generate_keypair`` writes the private key (PKCS#8 PEM, mode 0600, optionally encrypted with
a passphrase) and the public key beside it (``<file>.pub``, PEM). The private key belongs to the
person or the build machine that signs: it is refused inside the repository, inside the registry
and inside a station data folder (``$INSPECTOR_DATA``), and a private key readable by others is
refused like ssh does. Only the public key goes to stations (``model_trust.trusted_keys``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inspector.runtime.model_artifact import (
    SIGNATURE_ALGORITHM,
    SIGNATURE_DOMAIN,
    SIGNATURE_SCHEMA,
    load_public_key,
    public_key_id,
    signature_path_for,
)
from inspector.runtime.registry import RegistryError
from inspector.util.atomic import write_json_atomic
from training.registry.files import utc_now

PASSPHRASE_ENV = "INSPECTOR_SIGNING_PASSPHRASE"
REPO_ROOT = Path(__file__).resolve().parents[2]


class SigningKeyError(RegistryError):
    """A signing key cannot be made, read or used (the message says what to do)."""


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def forbidden_key_folders(extra: Iterable[Path | str | None] = ()) -> list[tuple[str, Path]]:
    """Folders a private key must never be in: the repository, ``$INSPECTOR_DATA``, and ``extra`` (registries)."""
    out = [("the repository", REPO_ROOT)]
    data = os.environ.get("INSPECTOR_DATA", "").strip()
    if data:
        out.append(("the station data folder ($INSPECTOR_DATA)", Path(data).expanduser()))
    out += [("the model registry", Path(p).expanduser()) for p in extra if p is not None]
    return out


def check_private_key_location(path: Path | str, extra_forbidden: Iterable[Path | str | None] = ()) -> None:
    p = Path(path).expanduser()
    for what, folder in forbidden_key_folders(extra_forbidden):
        if _inside(p, folder):
            raise SigningKeyError(f"a private signing key must not live inside {what} ({folder}): {p}; keep it in "
                                  "your home folder or a secrets store, and give stations only the .pub file")


def generate_keypair(path: Path | str, *, passphrase: bytes | None = None, overwrite: bool = False,
                     forbidden: Iterable[Path | str | None] = ()) -> tuple[Path, Path, str]:
    """Write a new ed25519 private key to ``path`` (0600) and its public key to ``path.pub``.

    Returns (private path, public path, key id).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv_path = Path(path).expanduser()
    pub_path = priv_path.with_name(priv_path.name + ".pub")
    check_private_key_location(priv_path, forbidden)
    for p in (priv_path, pub_path):
        if p.exists() and not overwrite:
            raise SigningKeyError(f"{p} already exists; choose another file (a key is never overwritten silently)")
    key = Ed25519PrivateKey.generate()
    enc = (serialization.BestAvailableEncryption(passphrase) if passphrase
           else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    pub = key.public_key()
    pub_pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    priv_path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite and priv_path.exists():
        priv_path.unlink()
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_bytes(pub_pem)
    return priv_path, pub_path, public_key_id(raw)


def load_private_key(path: Path | str, *, passphrase: bytes | None = None,
                     forbidden: Iterable[Path | str | None] = ()) -> Any:
    """The ed25519 private key at ``path`` (passphrase: argument, else ``$INSPECTOR_SIGNING_PASSPHRASE``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    p = Path(path).expanduser()
    check_private_key_location(p, forbidden)
    try:
        mode = p.stat().st_mode
        data = p.read_bytes()
    except OSError as e:
        raise SigningKeyError(f"signing key {p} cannot be read: {e}") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"signing key {p} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                              f"run `chmod 600 {p}`")
    if passphrase is None and os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV].encode()
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as e:
        raise SigningKeyError(f"signing key {p}: {e} (set ${PASSPHRASE_ENV} for an encrypted key)") from None
    except ValueError as e:
        raise SigningKeyError(f"signing key {p} is not a PEM private key, or the passphrase is wrong: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {p} is a {type(key).__name__}, not ed25519 (make one with "
                              "`inspector-train keygen`)")
    return key


def sign_manifest(manifest_path: Path | str, private_key: Any, signer: str) -> dict[str, Any]:
    """Sign the manifest's exact bytes; write ``<manifest>.sig`` atomically; return the signature record."""
    from cryptography.hazmat.primitives import serialization

    mpath = Path(manifest_path)
    data = mpath.read_bytes()
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    record = {
        "schema": SIGNATURE_SCHEMA,
        "algorithm": SIGNATURE_ALGORITHM,
        "key_id": public_key_id(raw),
        "signature": base64.b64encode(private_key.sign(SIGNATURE_DOMAIN + data)).decode("ascii"),
        "manifest_sha256": hashlib.sha256(data).hexdigest(),
        "signed": utc_now(),
        "signer": signer,
    }
    write_json_atomic(signature_path_for(mpath), record)
    return record


__all__ = ["PASSPHRASE_ENV", "SigningKeyError", "check_private_key_location", "generate_keypair",
           "load_private_key", "load_public_key", "sign_manifest"]
