"""`inspector-train keygen` and `inspector-train sign`: ed25519 keys and signed model manifests.

A station whose config sets ``model_trust.require_signature`` loads only models whose manifest is
signed by one of its ``model_trust.trusted_keys`` (public keys). The private key stays with whoever
signs: it is refused inside the repository, the registry and a station data folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from inspector.util.clickopts import json_option


@click.command("keygen")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Private key file to write (default: ~/.config/inspector/signing-key.pem); the public key "
                   "goes beside it as FILE.pub.")
@click.option("--passphrase-env", is_flag=True,
              help="Encrypt the private key with the passphrase in $INSPECTOR_SIGNING_PASSPHRASE.")
@json_option
def keygen(out: Path | None, passphrase_env: bool, as_json: bool) -> None:
    """Make an ed25519 key pair for signing model manifests.

    The private key is written with mode 0600, never inside the repository, a registry or a
    station data folder. Copy only the .pub file to stations (model_trust.trusted_keys).
    """
    from training.registry.signing import PASSPHRASE_ENV, SigningKeyError, generate_keypair

    path = out if out is not None else Path.home() / ".config" / "inspector" / "signing-key.pem"
    passphrase = None
    if passphrase_env:
        passphrase = os.environ.get(PASSPHRASE_ENV, "").encode() or None
        if passphrase is None:
            raise click.UsageError(f"--passphrase-env: ${PASSPHRASE_ENV} is empty")
    try:
        priv, pub, key_id = generate_keypair(path, passphrase=passphrase,
                                             forbidden=[os.environ.get("INSPECTOR_REGISTRY") or None])
    except SigningKeyError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps({"private_key": str(priv), "public_key": str(pub), "key_id": key_id}))
        return
    click.echo(f"private key {priv} (keep it secret; mode 0600)")
    click.echo(f"public key  {pub} (key id {key_id}): give stations this file in model_trust.trusted_keys")


@click.command("sign")
@click.option("--model", "spec", required=True, metavar="NAME@VERSION", help="The registry version to sign.")
@click.option("--key", "key", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="ed25519 private key (from `inspector-train keygen`); passphrase: $INSPECTOR_SIGNING_PASSPHRASE.")
@click.option("--user", default=None, help="Who signs, for the record (default: $INSPECTOR_USER, else the login name).")
@click.option("--reason", default="", help="Why, in a few words; kept in the event log.")
@click.option("--registry", "registry_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Registry folder (default: $INSPECTOR_REGISTRY, else the repository's models/ folder).")
@json_option
def sign(spec: str, key: Path, user: str | None, reason: str, registry_dir: Path | None, as_json: bool) -> None:
    """Sign a registry version's manifest (after checking its files against the index).

    The signature (model.manifest.json.sig) covers the manifest, which holds the ONNX file's sha256.
    """
    from inspector.runtime.model_artifact import ModelArtifactError
    from training.registry import Registry, RegistryError

    reg = Registry(registry_dir)
    try:
        signed = reg.sign(spec, key, user=user, reason=reason)
    except (RegistryError, ModelArtifactError) as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps({"model": spec, **signed}, sort_keys=True))
        return
    click.echo(f"signed {spec} with key {signed['key_id']} ({signed['signer']}, {signed['signed']})")
