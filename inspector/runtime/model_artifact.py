"""Model artifacts: the manifest beside each ONNX file, its sha256, and the labels inside the model.

Manifest format (decision): a sidecar JSON file named ``<onnx stem>.manifest.json`` in the same
folder as the ONNX file (``det.onnx`` -> ``det.manifest.json``). A sidecar works both in a registry
version folder (``registry/<name>/<version>/det.onnx``) and in a flat folder, lets one folder hold
several variants (fp32 / fp16) side by side, and keeps the pair together when copied. The manifest
names the ONNX file by base name only (never a path), so it cannot point outside its folder.

    {
      "schema": 1,
      "name": "wafer-defects", "version": "3", "task": "detect",
      "onnx": "det.onnx", "sha256": "<64 hex>",
      "class_names": ["scratch", "particle"],
      "imgsz": [640, 640],                      # model input (height, width)
      "input": {"layout": "NCHW", "color": "RGB", "dtype": "float32", "scale": 1/255,
                "letterbox": "center", "pad_value": 114},
      "exported_from": "runs/train7/weights/best.pt sha256:...",
      "created": "2025-01-01T12:00:00+00:00",
      "extra": {}                               # free-form (metrics, dataset id, ...)
    }

Why labels are checked twice: ultralytics writes ``names`` and ``imgsz`` into the ONNX
``metadata_props``; a manifest or station config whose class list disagrees with the model's own
list would silently mislabel every defect, so such a model is refused.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.util.atomic import write_json_atomic

MANIFEST_SUFFIX = ".manifest.json"
SCHEMA_VERSION = 1
DEFAULT_INPUT: dict[str, Any] = {
    "layout": "NCHW",
    "color": "RGB",
    "dtype": "float32",
    "scale": 1.0 / 255.0,
    "letterbox": "center",
    "pad_value": 114,
}
_CHUNK = 1 << 20  # 1 MiB: streaming hash, constant memory for any model size


class ModelArtifactError(Exception):
    """Base class: a model file or its manifest cannot be trusted or used."""


class ModelIntegrityError(ModelArtifactError):
    """The file's sha256 is not the one the manifest promises (tampered, truncated, wrong file)."""

    def __init__(self, path: Path | str, expected: str, actual: str) -> None:
        self.path = Path(path)
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"model file {self.path} failed its integrity check: expected sha256 {expected}, "
            f"got {actual}; refusing to load it (re-export the model or restore the file from the registry)"
        )


class ManifestError(ModelArtifactError):
    """A manifest is missing, unreadable or has a wrong field."""


class ModelMetadataError(ModelArtifactError):
    """The model's own metadata disagrees with the manifest or the station config."""


# --- hashing ----------------------------------------------------------------------------------
def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(onnx_path: Path | str, expected: str) -> str:
    """Check ``onnx_path`` against ``expected``; return the hash, raise ``ModelIntegrityError`` on mismatch."""
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    want = _normalise_sha(expected, where=str(path))
    actual = sha256_file(path)
    if actual != want:
        raise ModelIntegrityError(path, want, actual)
    return actual


def read_verified(onnx_path: Path | str, expected: str | None) -> tuple[bytes, str]:
    """The file's bytes and their sha256, checked against ``expected`` when given.

    Loading a session from these bytes (not from the path again) means the bytes that were
    verified are the bytes that run: nothing can swap the file between the check and the load.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None:
        want = _normalise_sha(expected, where=str(path))
        if actual != want:
            raise ModelIntegrityError(path, want, actual)
    return data, actual


def _normalise_sha(value: Any, where: str) -> str:
    s = str(value).strip().lower()
    s = s.removeprefix("sha256:")
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise ManifestError(f"{where}: sha256 must be 64 hex digits, got {value!r}")
    return s


# --- the ONNX file's own metadata -------------------------------------------------------------
@dataclass(frozen=True)
class ModelMetadata:
    """What an exported model says about itself (ultralytics ``metadata_props``); fields may be None."""

    class_names: tuple[str, ...] | None = None
    imgsz: tuple[int, int] | None = None
    task: str | None = None
    stride: int | None = None
    end2end: bool = False  # exported with NMS inside the graph: a different output format
    raw: Mapping[str, str] = field(default_factory=dict)


def parse_metadata(props: Mapping[str, str]) -> ModelMetadata:
    """Parse ultralytics' ONNX metadata (``names`` is a Python dict literal, ``imgsz`` a list literal).

    ``ast.literal_eval`` only evaluates literals, never code, so a crafted model cannot run anything here.
    """
    names: tuple[str, ...] | None = None
    if "names" in props:
        try:
            parsed = ast.literal_eval(props["names"])
        except (ValueError, SyntaxError) as e:
            raise ModelMetadataError(f"model metadata 'names' is not readable: {props['names']!r}") from e
        if isinstance(parsed, Mapping):
            keys = sorted(int(k) for k in parsed)
            if keys != list(range(len(keys))):
                raise ModelMetadataError(f"model metadata 'names' has non-contiguous class ids: {keys}")
            names = tuple(str(parsed[k]) for k in keys)
        elif isinstance(parsed, (list, tuple)):
            names = tuple(str(n) for n in parsed)
    imgsz: tuple[int, int] | None = None
    if "imgsz" in props:
        try:
            v = ast.literal_eval(props["imgsz"])
            imgsz = (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))
        except (ValueError, SyntaxError, TypeError, IndexError):
            imgsz = None  # not ours to enforce; the input shape is checked separately
    stride = int(props["stride"]) if props.get("stride", "").isdigit() else None
    end2end = props.get("end2end", "False").strip().lower() == "true"
    if not end2end and "args" in props:
        try:
            args = ast.literal_eval(props["args"])
            end2end = bool(isinstance(args, Mapping) and args.get("nms"))
        except (ValueError, SyntaxError):
            pass
    return ModelMetadata(names, imgsz, props.get("task"), stride, end2end, dict(props))


def read_onnx_metadata(onnx_path: Path | str) -> ModelMetadata:
    """Metadata of an ONNX file, read through onnxruntime (the station has no ``onnx`` package)."""
    import onnxruntime as ort  # local: keeps manifest handling importable without a runtime

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # we only read metadata
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return parse_metadata(sess.get_modelmeta().custom_metadata_map)


def check_class_names(expected: Sequence[str], meta: ModelMetadata, source: str, model: Path | str) -> None:
    """Refuse a model whose own class list differs from ``expected`` (from ``source``)."""
    if meta.class_names is None:
        return  # a model without names metadata (not exported by ultralytics): the manifest is the authority
    if tuple(expected) != meta.class_names:
        raise ModelMetadataError(
            f"model {model} was exported with class names {list(meta.class_names)} but the {source} says "
            f"{list(expected)}; running it would mislabel detections (fix the {source} or use the right model)"
        )


# --- the manifest -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelManifest:
    name: str
    version: str
    sha256: str
    onnx: str
    class_names: tuple[str, ...]
    imgsz: tuple[int, int]
    task: str = "detect"
    input: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_INPUT))
    exported_from: str = ""
    created: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where it was loaded from (not serialised)

    @property
    def onnx_path(self) -> Path:
        base = self.path.parent if self.path is not None else Path(".")
        return base / self.onnx

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "onnx": self.onnx,
            "sha256": self.sha256,
            "class_names": list(self.class_names),
            "imgsz": list(self.imgsz),
            "input": dict(self.input),
            "exported_from": self.exported_from,
            "created": self.created,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: Path | None = None) -> ModelManifest:
        where = str(path) if path else "manifest"

        def need(key: str, kind: type | tuple[type, ...]) -> Any:
            if key not in d:
                raise ManifestError(f"{where}: missing field '{key}'")
            if not isinstance(d[key], kind):
                raise ManifestError(f"{where}: field '{key}' has the wrong type ({type(d[key]).__name__})")
            return d[key]

        schema = d.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ManifestError(f"{where}: schema {schema} is not supported (this version reads {SCHEMA_VERSION})")
        onnx = need("onnx", str)
        if Path(onnx).name != onnx or onnx in ("", ".", ".."):
            raise ManifestError(f"{where}: field 'onnx' must be a file name beside the manifest, got {onnx!r}")
        names = need("class_names", list)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ManifestError(f"{where}: field 'class_names' must be a non-empty list of names")
        if len(set(names)) != len(names):
            raise ManifestError(f"{where}: field 'class_names' has duplicates: {names}")
        raw_sz = need("imgsz", (list, int))
        imgsz = _imgsz_pair(raw_sz, where)
        task = d.get("task", "detect")
        if task != "detect":
            raise ManifestError(f"{where}: task {task!r} is not supported by the detector runtime (expected 'detect')")
        return cls(
            name=str(need("name", str)),
            version=str(need("version", (str, int))),
            sha256=_normalise_sha(need("sha256", str), where),
            onnx=onnx,
            class_names=tuple(names),
            imgsz=imgsz,
            task=task,
            input={**DEFAULT_INPUT, **dict(d.get("input") or {})},
            exported_from=str(d.get("exported_from", "")),
            created=str(d.get("created", "")),
            extra=dict(d.get("extra") or {}),
            path=path,
        )


def _imgsz_pair(v: Any, where: str) -> tuple[int, int]:
    if isinstance(v, int):
        v = [v, v]
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v)):
        raise ManifestError(f"{where}: field 'imgsz' must be an int or [height, width], got {v!r}")
    return int(v[0]), int(v[1])


def manifest_path_for(onnx_path: Path | str) -> Path:
    """``det.onnx`` -> ``det.manifest.json`` (same folder)."""
    p = Path(onnx_path)
    return p.with_name(p.stem + MANIFEST_SUFFIX)


def load_manifest(path: Path | str) -> ModelManifest:
    """Read a manifest; ``path`` may also be the ONNX file (its sidecar manifest is read)."""
    p = Path(path)
    if p.suffix == ".onnx":
        p = manifest_path_for(p)
    if not p.is_file():
        raise ManifestError(f"manifest {p} does not exist (expected <model>{MANIFEST_SUFFIX} beside the ONNX file)")
    return ModelManifest.from_dict(_json_object(p, "manifest", ManifestError), path=p)


def write_manifest(
    onnx_path: Path | str,
    name: str,
    version: str | int,
    class_names: Sequence[str],
    imgsz: int | Sequence[int],
    *,
    exported_from: str = "",
    created: str | None = None,
    extra: Mapping[str, Any] | None = None,
    check_metadata: bool = True,
) -> Path:
    """Hash ``onnx_path`` and write its sidecar manifest atomically; return the manifest path.

    With ``check_metadata`` the ONNX file's own ``names`` must equal ``class_names``: a registry
    entry can never carry labels that the model was not trained with.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"model file {onnx_path} does not exist")
    if check_metadata:
        check_class_names(class_names, read_onnx_metadata(onnx_path), "manifest being written", onnx_path)
    manifest = ModelManifest(
        name=name,
        version=str(version),
        sha256=sha256_file(onnx_path),
        onnx=onnx_path.name,
        class_names=tuple(class_names),
        imgsz=_imgsz_pair(list(imgsz) if not isinstance(imgsz, int) else imgsz, str(onnx_path)),
        exported_from=exported_from,
        created=created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra=dict(extra or {}),
    )
    ModelManifest.from_dict(manifest.to_dict())  # the same validation a reader applies
    return write_json_atomic(manifest_path_for(onnx_path), manifest.to_dict())  # a reader never sees half of it


# --- signatures -------------------------------------------------------------------------------
# A manifest may be signed with an ed25519 key: the signature lies beside it in
# ``<manifest>.sig`` (``model.manifest.json`` -> ``model.manifest.json.sig``), a small JSON file:
#
#     {"schema": 1, "algorithm": "ed25519", "key_id": "<16 hex>", "signature": "<base64>",
#      "manifest_sha256": "<64 hex>", "signed": "<UTC time>", "signer": "<who>"}
#
# The signature covers the manifest's exact bytes (after a fixed domain prefix); the manifest holds
# the ONNX file's sha256, which the detector checks when it loads the bytes, so one signature
# vouches for name, version, labels, input and model file together. ``key_id`` is the first 16 hex
# digits of the sha256 of the raw 32-byte public key. A station that requires signatures
# (``model_trust`` in its config) refuses a model whose manifest has no signature, or one that no
# trusted key verifies. Training signs (``training.registry.signing``); the station only verifies.
SIGNATURE_SUFFIX = ".sig"
SIGNATURE_SCHEMA = 1
SIGNATURE_ALGORITHM = "ed25519"
SIGNATURE_DOMAIN = b"inspector-model-manifest-v1\n"


class SignatureError(ModelArtifactError):
    """A model's manifest is unsigned, badly signed or signed by a key the station does not trust."""


def signature_path_for(manifest_path: Path | str) -> Path:
    """``model.manifest.json`` -> ``model.manifest.json.sig`` (same folder)."""
    p = Path(manifest_path)
    if p.suffix == ".onnx":
        p = manifest_path_for(p)
    return p.with_name(p.name + SIGNATURE_SUFFIX)


def public_key_id(raw_public_key: bytes) -> str:
    """First 16 hex digits of the sha256 of the raw 32-byte ed25519 public key."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    path: Path
    key: Any  # cryptography's Ed25519PublicKey


def load_public_key(path: Path | str) -> TrustedKey:
    """An ed25519 public key from a PEM (``-----BEGIN PUBLIC KEY-----``) or OpenSSH one-line file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SignatureError(f"trusted key {p} cannot be read: {e}") from e
    try:
        if data.lstrip().startswith(b"ssh-"):
            key = serialization.load_ssh_public_key(data.strip())
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        if b"PRIVATE KEY" in data:
            raise SignatureError(f"{p} is a PRIVATE key: give the station the public key (the .pub file made "
                                 "by `inspector-train keygen`) and keep the private one away from it") from None
        raise SignatureError(f"trusted key {p} is not a PEM or OpenSSH public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"trusted key {p} is a {type(key).__name__}, not an ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return TrustedKey(public_key_id(raw), p, key)


@dataclass(frozen=True)
class TrustPolicy:
    """What a station asks of a model's signature: ``require`` one, made by one of ``keys``."""

    require: bool = False
    keys: tuple[TrustedKey, ...] = ()

    @classmethod
    def from_paths(cls, require: bool, key_paths: Sequence[Path | str] = ()) -> TrustPolicy:
        keys = tuple(load_public_key(p) for p in key_paths)
        if require and not keys:
            raise SignatureError("signatures are required but no trusted key is given (model_trust.trusted_keys)")
        return cls(require, keys)


def read_signature(manifest_path: Path | str) -> dict[str, Any] | None:
    """The parsed signature file of a manifest, or None when there is none."""
    sig_path = signature_path_for(manifest_path)
    if not sig_path.is_file():
        return None
    return _json_object(sig_path, "signature", SignatureError)


def verify_manifest_signature(manifest_path: Path | str, keys: Sequence[TrustedKey],
                              manifest_bytes: bytes | None = None) -> str:
    """Check ``<manifest>.sig`` against the manifest's bytes; return the key id that signed it.

    Raises ``SignatureError``: no signature, unknown algorithm, a key not trusted here, or a
    signature that does not verify (the manifest or the signature changed after signing).
    """
    import base64

    from cryptography.exceptions import InvalidSignature

    mpath = Path(manifest_path)
    if mpath.suffix == ".onnx":
        mpath = manifest_path_for(mpath)
    sig_path = signature_path_for(mpath)
    sig = read_signature(mpath)
    if sig is None:
        raise SignatureError(f"manifest {mpath} is not signed (no {sig_path.name} beside it) and this station "
                             "requires signed models; sign it with `inspector-train sign --model NAME@VERSION "
                             "--key FILE`")
    if sig.get("schema", SIGNATURE_SCHEMA) != SIGNATURE_SCHEMA or sig.get("algorithm") != SIGNATURE_ALGORITHM:
        raise SignatureError(f"signature {sig_path}: expected schema {SIGNATURE_SCHEMA} with algorithm "
                             f"{SIGNATURE_ALGORITHM}, got schema {sig.get('schema')!r}, {sig.get('algorithm')!r}")
    try:
        signature = base64.b64decode(str(sig.get("signature", "")), validate=True)
    except ValueError as e:
        raise SignatureError(f"signature {sig_path}: 'signature' is not base64: {e}") from None
    data = manifest_bytes if manifest_bytes is not None else mpath.read_bytes()
    key_id = str(sig.get("key_id", ""))
    candidates = [k for k in keys if k.key_id == key_id]
    if not candidates:
        trusted = ", ".join(f"{k.key_id} ({k.path})" for k in keys) or "none"
        raise SignatureError(f"manifest {mpath} is signed by key {key_id or '(none)'}, which this station does "
                             f"not trust (trusted keys: {trusted}); refusing the model")
    for k in candidates:
        try:
            k.key.verify(signature, SIGNATURE_DOMAIN + data)
            return k.key_id
        except InvalidSignature:
            continue
    raise SignatureError(f"manifest {mpath} does not match its signature {sig_path.name} (key {key_id}): the "
                         "manifest or the signature was changed after signing; refusing the model")


def load_trusted_manifest(path: Path | str, policy: TrustPolicy | None) -> tuple[ModelManifest, str | None]:
    """``load_manifest``, and with a policy that requires it, the signature checked on the same bytes.

    Returns the manifest and the key id that signed it (None when not checked).
    """
    p = Path(path)
    if p.suffix == ".onnx":
        p = manifest_path_for(p)
    if policy is None or not policy.require:
        return load_manifest(p), None
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ManifestError(f"manifest {p} cannot be read: {e}") from e
    key_id = verify_manifest_signature(p, policy.keys, manifest_bytes=data)
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"manifest {p} is not readable JSON: {e}") from e
    if not isinstance(parsed, dict):
        raise ManifestError(f"manifest {p}: expected a JSON object")
    return ModelManifest.from_dict(parsed, path=p), key_id


def _json_object(path: Path, what: str, error: type[Exception]) -> dict:
    """A JSON object read from ``path``, or ``error`` naming the file (``what``: manifest, signature)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{what} {path} is not readable JSON: {e}") from e
    if not isinstance(data, dict):
        raise error(f"{what} {path}: expected a JSON object")
    return data
