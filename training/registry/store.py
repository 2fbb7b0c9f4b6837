"""The ``Registry``: write access to a registry folder (register, evaluations, gate, promote, roll back).

Layout and index format: see ``inspector.runtime.registry`` (the station's read side). Each version
folder ``<root>/<name>/<version>/`` holds ``model.onnx``, its runtime manifest ``model.manifest.json``,
the full record ``registry.json``, the model card ``card.md``, optionally ``weights.pt`` (training
only: the station never reads it) and ``evals/`` (evaluations stored with ``add_eval``).

Every change is appended to the event log (``training.registry.events``) before the index is
rewritten with the log's new head (write-ahead), under the writers' lock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.runtime.model_artifact import (
    ModelArtifactError,
    load_manifest,
    sha256_file,
    verify_sha256,
    write_manifest,
)
from inspector.runtime.registry import (
    ARCHIVED,
    CANDIDATE,
    CARD_FILE,
    EVENTS_FILE,
    INDEX_FILE,
    INDEX_SCHEMA,
    MANIFEST_FILE,
    NAME_RE,
    ONNX_FILE,
    PRODUCTION,
    RECORD_FILE,
    SHADOW,
    STAGES,
    WEIGHTS_FILE,
    NoProductionModelError,
    RegistryError,
    RegistryIntegrityError,
    RegistryReader,
    UnknownModelError,
    default_registry_root,
    describe_versions,
    parse_spec,
    read_index,
    version_sort_key,
)
from inspector.util.atomic import write_text_atomic
from inspector.util.canonical import canonical_json, sha256_text
from training.registry.card import ModelCardInfo, is_number, normalise_metrics, render_card
from training.registry.events import EventsCheck, append_event, read_events, verify_events
from training.registry.files import LOCK_FILE, check_user, exclusive_lock, read_json, utc_now, write_json
from training.registry.gate import GateConfig, GateRefused, GateResult, evaluate_gate
from training.registry.signing import load_private_key, sign_manifest
from training.registry.verify import VerifyReport, verify_registry

RECORD_SCHEMA = 1
EVALS_DIR = "evals"


@dataclass(frozen=True)
class RollbackResult:
    name: str
    restored: str  # the version now in production
    replaced: str  # the version that was in production (now archived)
    user: str
    time: str


# --- the registry -------------------------------------------------------------------------------
class Registry:
    """Write access to a registry folder (training side). Safe for several processes at once."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_registry_root()
        self.reader = RegistryReader(self.root)

    # --- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Hold the writers' lock; yields the current index (write it with ``_commit``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.root / LOCK_FILE):
            yield read_index(self.root)

    def _commit(self, index: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        """Append the event, then write the index with the new log head (write-ahead: the log first)."""
        head, count = append_event(self.root, event)
        index["schema"] = INDEX_SCHEMA
        index["events_head"], index["events_count"] = head, count
        write_json(self.root / INDEX_FILE, index)
        return event

    def _versions(self, index: Mapping[str, Any], name: str) -> dict[str, Any]:
        return self.reader._model(index, name)["versions"]

    def _entry(self, index: Mapping[str, Any], name: str, version: str) -> dict[str, Any]:
        versions = self._versions(index, name)
        if version not in versions:
            raise UnknownModelError(f"model '{name}' has no version '{version}' in the registry at {self.root} "
                                    f"(versions: {describe_versions(versions)})")
        return versions[version]

    def _record_path(self, name: str, version: str) -> Path:
        return self.root / name / version / RECORD_FILE

    def record(self, name: str, version: str) -> dict[str, Any]:
        """The full ``registry.json`` record of one version."""
        self._entry(read_index(self.root), name, version)
        return read_json(self._record_path(name, version), "registry record")

    def _set_record_stage(self, name: str, version: str, stage: str, time: str, user: str, action: str) -> None:
        path = self._record_path(name, version)
        rec = read_json(path, "registry record")
        rec.setdefault("history", []).append({"time": time, "user": user, "action": action,
                                              "from_stage": rec.get("stage"), "to_stage": stage})
        rec["stage"] = stage
        write_json(path, rec)

    def _check_files(self, name: str, version: str, entry: Mapping[str, Any]) -> None:
        """Before a version goes to production: its manifest and ONNX bytes must match the index."""
        folder = self.root / name / version
        try:
            manifest = load_manifest(folder / MANIFEST_FILE)
            verify_sha256(manifest.onnx_path, entry.get("sha256", ""))
            if manifest.sha256 != entry.get("sha256"):
                raise RegistryIntegrityError(f"{name}@{version}: index sha256 {entry.get('sha256')} differs from "
                                             f"manifest sha256 {manifest.sha256}")
        except (ModelArtifactError, FileNotFoundError) as e:
            raise RegistryIntegrityError(f"{name}@{version} cannot go to production: {e}") from e

    @staticmethod
    def _event(action: str, user: str, name: str, version: str | None, from_stage: str | None,
               to_stage: str | None, reason: str = "", **extra: Any) -> dict[str, Any]:
        return {"time": utc_now("milliseconds"), "user": user, "action": action, "name": name, "version": version,
                "from_stage": from_stage, "to_stage": to_stage, "reason": reason or "", "gate": None, **extra}

    # --- register -------------------------------------------------------------------------------
    def register(
        self,
        onnx_path: Path | str,
        name: str,
        class_names: Sequence[str],
        imgsz: int | Sequence[int],
        *,
        dataset_hash: str,
        train_config: Mapping[str, Any] | None,
        parent: str | None,
        metrics: Mapping[str, Any] | None,
        author: str | None,
        card: ModelCardInfo | Mapping[str, Any] | None,
        weights_pt: Path | str | None = None,
        stage: str = CANDIDATE,
        exported_from: str = "",
        check_metadata: bool = True,
        reason: str = "",
        signing_key: Path | str | None = None,
    ) -> dict[str, Any]:
        """Copy a model into a new version folder (versions "1", "2", ...); returns its record.

        ``check_metadata``: the ONNX file's own class names (ultralytics metadata) must equal
        ``class_names``. ``parent`` is ``name@version`` of a model in this registry, or None.
        ``signing_key``: an ed25519 private key file; the manifest is signed before the version appears.
        """
        key = self._signing_key(signing_key)
        onnx_path = Path(onnx_path)
        if not NAME_RE.match(name or ""):
            raise RegistryError(f"model name {name!r}: use lowercase letters, digits, '_', '.' or '-' "
                                "(starting with a letter or digit, at most 64 characters)")
        if not onnx_path.is_file():
            raise RegistryError(f"model file {onnx_path} does not exist")
        if onnx_path.suffix.lower() != ".onnx":
            raise RegistryError(f"{onnx_path}: the registry holds ONNX models (export the checkpoint first); "
                                "a .pt goes in with weights_pt, for fine-tuning only")
        if stage not in (CANDIDATE, SHADOW):
            raise RegistryError(f"a new version starts as candidate or shadow, not {stage!r} "
                                "(production only through `promote`, which applies the gate)")
        class_names = [str(c) for c in class_names]
        if not class_names or len(set(class_names)) != len(class_names) or not all(class_names):
            raise RegistryError(f"class names must be a non-empty list of unique names, got {class_names}")
        hw = [int(imgsz), int(imgsz)] if isinstance(imgsz, int) else [int(x) for x in imgsz]
        if len(hw) != 2 or min(hw) <= 0:
            raise RegistryError(f"imgsz must be an int or [height, width], got {imgsz!r}")
        if not isinstance(dataset_hash, str) or not dataset_hash.strip():
            raise RegistryError("dataset_hash is required: the hash of the dataset the model was trained on")
        author = check_user(author)
        weights = Path(weights_pt) if weights_pt is not None else None
        if weights is not None and not weights.is_file():
            raise RegistryError(f"weights file {weights} does not exist")
        card_info = card if isinstance(card, ModelCardInfo) else ModelCardInfo.from_dict(card)
        norm_metrics = normalise_metrics(metrics)
        train_cfg = json.loads(json.dumps(dict(train_config or {}), default=str))  # JSON-safe copy
        try:
            canonical_json(norm_metrics, strict=True)
        except ValueError as e:
            raise RegistryError(f"metrics must be finite numbers: {e}") from e

        with self._locked() as index:
            if parent is not None:
                try:
                    pname, pversion = parse_spec(parent)
                except ValueError as e:
                    raise RegistryError(f"parent: {e}") from None
                if pversion is None:
                    raise RegistryError(f"parent {parent!r} must name a version: 'name@version'")
                if pversion not in index["models"].get(pname, {}).get("versions", {}):
                    raise UnknownModelError(f"parent {parent} is not in the registry at {self.root}")
            model_dir = self.root / name
            model_dir.mkdir(parents=True, exist_ok=True)
            known = set(index["models"].get(name, {}).get("versions", {}))
            known |= {p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()}  # leftovers too
            version = str(max((int(v) for v in known if v.isdigit()), default=0) + 1)
            created = utc_now()
            tmp = Path(tempfile.mkdtemp(prefix=f".incoming-{version}-", dir=model_dir))
            try:
                shutil.copyfile(onnx_path, tmp / ONNX_FILE)
                weights_info = None
                if weights is not None:
                    shutil.copyfile(weights, tmp / WEIGHTS_FILE)
                    weights_info = {"file": WEIGHTS_FILE, "sha256": sha256_file(tmp / WEIGHTS_FILE)}
                extra = {"dataset_hash": dataset_hash, "parent": parent, "author": author,
                         "metrics": norm_metrics["overall"]}
                try:
                    mpath = write_manifest(tmp / ONNX_FILE, name, version, class_names, hw,
                                           exported_from=exported_from or str(onnx_path), created=created,
                                           extra=extra, check_metadata=check_metadata)
                except ModelArtifactError as e:
                    raise RegistryError(f"cannot register {onnx_path}: {e}") from e
                sha = load_manifest(mpath).sha256
                record: dict[str, Any] = {
                    "schema": RECORD_SCHEMA, "name": name, "version": version, "stage": stage,
                    "onnx": ONNX_FILE, "manifest": MANIFEST_FILE, "sha256": sha, "class_names": class_names,
                    "imgsz": hw, "dataset_hash": dataset_hash, "train_config": train_cfg, "parent": parent,
                    "metrics": norm_metrics, "created": created, "author": author, "card": CARD_FILE,
                    "card_info": card_info.to_dict(), "weights": weights_info, "evals": {},
                    "history": [{"time": created, "user": author, "action": "register",
                                 "from_stage": None, "to_stage": stage}],
                    "signatures": [],
                }
                if key is not None:
                    record["signatures"].append(_signature_entry(sign_manifest(mpath, key, author)))
                (tmp / CARD_FILE).write_text(render_card(record), encoding="utf-8")
                write_json(tmp / RECORD_FILE, record)
                os.rename(tmp, model_dir / version)  # the version appears complete or not at all
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            model = index["models"].setdefault(name, {"versions": {}, "production_history": []})
            model["versions"][version] = _index_entry(record)
            self._commit(index, self._event("register", author, name, version, None, stage, reason, sha256=sha,
                                            parent=parent, dataset_hash=dataset_hash,
                                            **({"signed_by": record["signatures"][0]["key_id"]} if key else {})))
        return record

    # --- evaluations ----------------------------------------------------------------------------
    def add_eval(self, name: str, version: str, eval_dict: Mapping[str, Any], user: str | None = None) -> Path:
        """Store an evaluation with a version (``evals/<dataset_hash>-<split>.json``); replaces one on the same set."""
        ds, split = eval_dict.get("dataset_hash"), eval_dict.get("split")
        if not (isinstance(ds, str) and ds and isinstance(split, str) and split):
            raise RegistryError("an evaluation needs 'dataset_hash' and 'split' (the held-out set it was made on)")
        user = check_user(user)
        try:
            text = json.dumps(dict(eval_dict), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        except (TypeError, ValueError) as e:
            raise RegistryError(f"evaluation of {name}@{version} is not JSON with finite numbers: {e}") from e
        key = f"{ds}-{split}"
        fname = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:150] + ".json"
        with self._locked() as index:
            entry = self._entry(index, name, version)
            measured = eval_dict.get("onnx_sha256")
            if isinstance(measured, str) and measured != entry.get("sha256"):
                raise RegistryError(f"this evaluation measured the model with sha256 {measured}, not {name}@{version} "
                                    f"(sha256 {entry.get('sha256')}); store it with the version it belongs to")
            folder = self.root / name / version
            (folder / EVALS_DIR).mkdir(exist_ok=True)
            out = folder / EVALS_DIR / fname
            write_text_atomic(out, text)
            rec_path = self._record_path(name, version)
            rec = read_json(rec_path, "registry record")
            summary = {k: eval_dict[k] for k in ("map50", "map50_95", "precision", "recall", "f1", "ece")
                       if is_number(eval_dict.get(k))}
            rec.setdefault("evals", {})[key] = {"file": f"{EVALS_DIR}/{fname}", "dataset_hash": ds, "split": split,
                                               "added": utc_now("milliseconds"), "user": user,
                                               "sha256": sha256_text(text), **summary}
            write_json(rec_path, rec)
            self._commit(index, self._event("eval", user, name, version, None, None, "", dataset_hash=ds,
                                            split=split, metrics=summary))
        return out

    def evals(self, name: str, version: str) -> dict[str, dict[str, Any]]:
        """Stored evaluation summaries of a version, keyed ``<dataset_hash>-<split>``."""
        return dict(self.record(name, version).get("evals") or {})

    def load_eval(self, name: str, version: str, dataset_hash: str, split: str) -> dict[str, Any] | None:
        info = self.evals(name, version).get(f"{dataset_hash}-{split}")
        if info is None:
            return None
        path = self.root / name / version / info["file"]
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if sha256_text(text) != info.get("sha256"):
            raise RegistryIntegrityError(f"stored evaluation {path} of {name}@{version} is missing or was changed "
                                         "after it was recorded; evaluate again")
        return json.loads(text)

    def _pick_evals(self, name: str, cand: str, prod: str, cand_eval: Mapping[str, Any] | None,
                    prod_eval: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        """Fill in missing evaluations from the registry, on the same held-out set as the given one."""
        if cand_eval is not None and prod_eval is not None:
            return cand_eval, prod_eval
        given = cand_eval if cand_eval is not None else prod_eval
        if given is not None:
            ds, split = given.get("dataset_hash"), given.get("split")
            other_v = prod if cand_eval is not None else cand
            if not (ds and split):
                raise GateRefused(GateResult(False, f"{name}@{cand}", f"{name}@{prod}", reasons=(
                    "the given evaluation names no 'dataset_hash' and 'split': cannot tell which held-out set it is",)))
            found = self.load_eval(name, other_v, str(ds), str(split))
            if found is None:
                raise GateRefused(GateResult(False, f"{name}@{cand}", f"{name}@{prod}", reasons=(
                    f"{name}@{other_v} has no stored evaluation on dataset {ds} split {split}; evaluate it on the "
                    "same held-out set or pass both evaluation files",)))
            return (cand_eval, found) if cand_eval is not None else (found, prod_eval)  # type: ignore[return-value]
        ce, pe = self.evals(name, cand), self.evals(name, prod)
        common = set(ce) & set(pe)
        if not common:
            raise GateRefused(GateResult(False, f"{name}@{cand}", f"{name}@{prod}", reasons=(
                f"no held-out set on which both {name}@{cand} (evaluated on: {', '.join(sorted(ce)) or 'nothing'}) "
                f"and {name}@{prod} (evaluated on: {', '.join(sorted(pe)) or 'nothing'}) were evaluated; "
                "evaluate both on the same dataset and split, or pass --candidate-eval and --production-eval",)))
        key = max(common, key=lambda k: max(ce[k].get("added", ""), pe[k].get("added", "")))  # the latest set
        c = self.load_eval(name, cand, ce[key]["dataset_hash"], ce[key]["split"])
        p = self.load_eval(name, prod, pe[key]["dataset_hash"], pe[key]["split"])
        assert c is not None and p is not None
        return c, p

    # --- the gate, stages, promotion, rollback --------------------------------------------------
    def check_gate(self, spec: str, *, gate: GateConfig | None = None,
                   candidate_eval: Mapping[str, Any] | None = None,
                   production_eval: Mapping[str, Any] | None = None) -> GateResult:
        """The gate's verdict for promoting ``name@version`` now, without changing anything."""
        name, version = split_versioned_spec(spec)
        return self._gate(read_index(self.root), name, version, gate or GateConfig(), candidate_eval, production_eval)

    def _gate(self, index: Mapping[str, Any], name: str, version: str, gate: GateConfig,
              cand_eval: Mapping[str, Any] | None, prod_eval: Mapping[str, Any] | None) -> GateResult:
        entry = self._entry(index, name, version)
        if entry.get("stage") == PRODUCTION:
            raise RegistryError(f"{name}@{version} is already in production")
        prod = _production(index, name)
        spec = f"{name}@{version}"
        if prod is None:
            return GateResult(True, spec, None, notes=("no model in production: the first promotion passes the "
                                                       "gate without comparison",), config=gate.to_dict())
        notes: list[str] = []
        prod_entry = self._entry(index, name, prod)
        if list(prod_entry.get("class_names") or []) != list(entry.get("class_names") or []):
            notes.append(f"class names differ from production ({prod_entry.get('class_names')} -> "
                         f"{entry.get('class_names')}): station configs that run '{name}' must list the new ones")
        if not gate.require_improvement:  # only a re-export of production's own weights may skip "beats it"
            mine, theirs = (self.record(name, v).get("weights") or {} for v in (version, prod))
            if not mine.get("sha256") or mine.get("sha256") != theirs.get("sha256"):
                raise GateRefused(GateResult(False, spec, f"{name}@{prod}", reasons=(
                    f"a re-export must hold production's own weights: {spec} keeps weights sha256 "
                    f"{mine.get('sha256')}, {name}@{prod} {theirs.get('sha256')}; a retrained model must beat "
                    "production",), notes=tuple(notes), config=gate.to_dict()))
            notes.append(f"re-export of {name}@{prod}'s weights (sha256 {mine['sha256'][:16]}...): within the "
                         "margins, need not beat production")
        try:
            c, p = self._pick_evals(name, version, prod, cand_eval, prod_eval)
        except GateRefused as e:
            r = e.result
            raise GateRefused(GateResult(False, r.candidate, r.production, reasons=r.reasons,
                                         notes=tuple(notes), config=gate.to_dict())) from None
        wrong = [f"the {who} evaluation is of the model with sha256 {ev['onnx_sha256']}, not {name}@{v} "
                 f"(sha256 {e.get('sha256')})"
                 for who, ev, v, e in (("candidate", c, version, entry), ("production", p, prod, prod_entry))
                 if isinstance(ev.get("onnx_sha256"), str) and ev["onnx_sha256"] != e.get("sha256")]
        if wrong:
            raise GateRefused(GateResult(False, spec, f"{name}@{prod}", reasons=tuple(wrong), notes=tuple(notes),
                                         config=gate.to_dict()))
        result = evaluate_gate(c, p, gate, candidate=spec, production=f"{name}@{prod}")
        if notes:
            result = GateResult(result.passed, result.candidate, result.production, result.checks, result.reasons,
                                result.notes + tuple(notes), result.dataset_hash, result.split, result.config)
        return result

    def promote(self, name: str, version: str, user: str | None, *, gate: GateConfig | None = None,
                candidate_eval: Mapping[str, Any] | None = None, production_eval: Mapping[str, Any] | None = None,
                reason: str = "", signing_key: Path | str | None = None) -> GateResult:
        """Put ``name@version`` in production if it passes the gate; the previous production is archived.

        Evaluations not given are taken from those stored with each version (same dataset and split).
        A refusal raises ``GateRefused`` (nothing changes except a ``promote_refused`` event).
        ``signing_key``: sign the version's manifest as it goes to production (after its files are checked).
        """
        user = check_user(user)
        key = self._signing_key(signing_key)
        gate = gate or GateConfig()
        with self._locked() as index:
            entry = self._entry(index, name, version)
            from_stage = entry.get("stage")
            try:
                result = self._gate(index, name, version, gate, candidate_eval, production_eval)
            except GateRefused as e:
                result = e.result
            if not result.passed:
                self._commit(index, self._event("promote_refused", user, name, version, from_stage, from_stage,
                                                reason, gate=result.to_dict()))
                raise GateRefused(result)
            self._check_files(name, version, entry)
            signed_by = self._sign_version(name, version, key, user)["key_id"] if key is not None else None
            now = utc_now()
            prod = _production(index, name)
            model = index["models"][name]
            history = model.setdefault("production_history", [])
            if prod is not None:
                if not history or history[-1] != prod:  # a hand-edited index: keep the history honest
                    history.append(prod)
                self._set_record_stage(name, prod, ARCHIVED, now, user, f"replaced by {version}")
                model["versions"][prod]["stage"] = ARCHIVED
            self._set_record_stage(name, version, PRODUCTION, now, user, "promote")
            entry["stage"] = PRODUCTION
            history.append(version)
            self._commit(index, self._event("promote", user, name, version, from_stage, PRODUCTION, reason,
                                            gate=result.to_dict(), replaced=prod,
                                            **({"signed_by": signed_by} if signed_by else {})))
        return result

    # --- signatures -----------------------------------------------------------------------------
    def _signing_key(self, path: Path | str | None) -> Any:
        """The private key at ``path`` (None: no signing); refused inside this registry or the repository."""
        return None if path is None else load_private_key(path, forbidden=[self.root])

    def _sign_version(self, name: str, version: str, key: Any, user: str) -> dict[str, Any]:
        """Sign the version's manifest and note it in its record (the caller holds the lock, checked the files)."""
        sig = sign_manifest(self.root / name / version / MANIFEST_FILE, key, user)
        entry = _signature_entry(sig)
        path = self._record_path(name, version)
        rec = read_json(path, "registry record")
        rec["signatures"] = [s for s in rec.get("signatures") or [] if s.get("key_id") != entry["key_id"]] + [entry]
        write_json(path, rec)
        return entry

    def sign(self, spec: str, key_path: Path | str, user: str | None = None, reason: str = "") -> dict[str, Any]:
        """Sign ``name@version``'s manifest with the private key at ``key_path`` (after checking its files).

        Returns ``{"key_id", "signed", "signer", "manifest_sha256"}``. Signing again (another key, or
        the same one) replaces the signature file; the record keeps who signed, and the event log when.
        """
        name, version = split_versioned_spec(spec)
        user = check_user(user)
        key = self._signing_key(key_path)
        with self._locked() as index:
            entry = self._entry(index, name, version)
            folder = self.root / name / version
            try:
                manifest = load_manifest(folder / MANIFEST_FILE)
                verify_sha256(manifest.onnx_path, manifest.sha256)
            except (ModelArtifactError, FileNotFoundError) as e:
                raise RegistryIntegrityError(f"{name}@{version} cannot be signed: {e}") from e
            if manifest.sha256 != entry.get("sha256") or (manifest.name, manifest.version) != (name, version):
                raise RegistryIntegrityError(f"{name}@{version} cannot be signed: its manifest ({manifest.name}@"
                                             f"{manifest.version}, sha256 {manifest.sha256}) disagrees with the "
                                             f"index (sha256 {entry.get('sha256')}); run `inspector-train models "
                                             "verify`")
            signed = self._sign_version(name, version, key, user)
            self._commit(index, self._event("sign", user, name, version, entry.get("stage"), entry.get("stage"),
                                            reason, signed_by=signed["key_id"]))
        return signed

    def rollback(self, name: str, user: str | None, reason: str = "") -> RollbackResult:
        """Production goes back to the version it replaced (current -> archived); again walks further back."""
        user = check_user(user)
        with self._locked() as index:
            versions = self._versions(index, name)
            current = _production(index, name)
            history = list(index["models"][name].get("production_history") or [])
            if current is None:
                raise RegistryError(f"model '{name}' has no version in production, nothing to roll back "
                                    f"(versions: {describe_versions(versions)})")
            if not history or history[-1] != current:
                raise RegistryIntegrityError(f"model '{name}': production history {history} does not end with the "
                                             f"production version {current}; run `inspector-train models verify`")
            if len(history) < 2:
                raise RegistryError(f"nothing to roll back to: {name}@{current} is the first version of '{name}' "
                                    "ever promoted")
            target = history[-2]
            if target not in versions:
                raise RegistryIntegrityError(f"model '{name}': rollback target version {target} is not in the index")
            self._check_files(name, target, versions[target])
            now = utc_now()
            target_from = versions[target].get("stage")
            self._set_record_stage(name, current, ARCHIVED, now, user, "rolled back")
            self._set_record_stage(name, target, PRODUCTION, now, user, "rollback")
            versions[current]["stage"], versions[target]["stage"] = ARCHIVED, PRODUCTION
            index["models"][name]["production_history"] = history[:-1]
            event = self._event("rollback", user, name, target, target_from, PRODUCTION, reason, replaced=current)
            self._commit(index, event)
        return RollbackResult(name, target, current, user, event["time"])

    def set_stage(self, name: str, version: str, stage: str, user: str | None, reason: str = "") -> dict[str, Any]:
        """Move a version among candidate / shadow / archived (production only through promote / rollback)."""
        user = check_user(user)
        if stage not in STAGES:
            raise RegistryError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        if stage == PRODUCTION:
            raise RegistryError(f"use `promote {name}@{version}` to put a version in production (it applies the gate)")
        with self._locked() as index:
            entry = self._entry(index, name, version)
            old = entry.get("stage")
            if old == PRODUCTION:
                raise RegistryError(f"{name}@{version} is in production; promote another version or roll back "
                                    "instead of changing its stage")
            if old == stage:
                return self.record(name, version)
            self._set_record_stage(name, version, stage, utc_now(), user, "stage")
            entry["stage"] = stage
            self._commit(index, self._event("stage", user, name, version, old, stage, reason))
        return self.record(name, version)

    # --- reading --------------------------------------------------------------------------------
    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        """One row per version (index data): name, version, stage, created, author, map50, map50_95, sha256."""
        index = read_index(self.root)
        names = [name] if name is not None else sorted(index["models"])
        rows = []
        for n in names:
            versions = self._versions(index, n)
            for v in sorted(versions, key=version_sort_key):
                e = versions[v]
                rows.append({"name": n, "version": v, "stage": e.get("stage"), "created": e.get("created"),
                             "author": e.get("author"), "map50": e.get("map50"), "map50_95": e.get("map50_95"),
                             "sha256": e.get("sha256")})
        return rows

    def show(self, spec: str) -> dict[str, Any]:
        """The manifest of ``name`` (production) or ``name@version``: record, stage and absolute paths."""
        try:
            name, version = parse_spec(spec)
        except ValueError as e:
            raise UnknownModelError(str(e)) from None
        index = read_index(self.root)
        versions = self._versions(index, name)
        if version is None:
            version = _production(index, name)
            if version is None:
                raise NoProductionModelError(f"model '{name}' has no version in production (versions: "
                                             f"{describe_versions(versions)}); ask for one with '{name}@VERSION'")
        entry = self._entry(index, name, version)
        rec = read_json(self._record_path(name, version), "registry record")
        folder = (self.root / name / version).resolve()
        out = {"name": name, "version": version, "stage": entry.get("stage"), "sha256": entry.get("sha256"),
               "path": str(folder / rec.get("onnx", ONNX_FILE)), "manifest_path": str(folder / MANIFEST_FILE),
               "card_path": str(folder / CARD_FILE), "classes": rec.get("class_names"), "imgsz": rec.get("imgsz"),
               "metrics": rec.get("metrics"), "dataset_hash": rec.get("dataset_hash"), "parent": rec.get("parent"),
               "created": rec.get("created"), "author": rec.get("author"), "train_config": rec.get("train_config"),
               "weights": rec.get("weights"), "evals": rec.get("evals") or {}, "history": rec.get("history") or [],
               "production_history": list(index["models"][name].get("production_history") or [])}
        return out

    def events(self) -> list[dict[str, Any]]:
        """All events, oldest first (not verified; see ``verify_events``)."""
        return read_events(self.root / EVENTS_FILE)

    def verify_events(self) -> EventsCheck:
        return verify_events(self.root / EVENTS_FILE)

    def verify(self) -> VerifyReport:
        """Hash every version's files against index, manifest and record; check stages and the event chain."""
        return verify_registry(self.root)


def split_versioned_spec(spec: str) -> tuple[str, str]:
    """``"name@3"`` -> ``("name", "3")``; a spec without a version raises ``RegistryError``."""
    try:
        name, version = parse_spec(spec)
    except ValueError as e:
        raise UnknownModelError(str(e)) from None
    if version is None:
        raise RegistryError(f"{spec!r}: name the version, e.g. '{name}@3'")
    return name, version


def _production(index: Mapping[str, Any], name: str) -> str | None:
    versions = index["models"].get(name, {}).get("versions", {})
    prod = [v for v, e in versions.items() if e.get("stage") == PRODUCTION]
    if len(prod) > 1:
        raise RegistryIntegrityError(f"model '{name}' has {len(prod)} versions in production ({', '.join(prod)}); "
                                     "run `inspector-train models verify`")
    return prod[0] if prod else None


def _signature_entry(sig: Mapping[str, Any]) -> dict[str, Any]:
    return {k: sig[k] for k in ("key_id", "signed", "signer", "manifest_sha256")}


def _index_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    overall = (record.get("metrics") or {}).get("overall") or {}
    return {"stage": record["stage"], "sha256": record["sha256"], "path": f"{record['name']}/{record['version']}",
            "created": record["created"], "author": record["author"], "class_names": list(record["class_names"]),
            "imgsz": list(record["imgsz"]), "map50": overall.get("map50"), "map50_95": overall.get("map50_95"),
            "parent": record.get("parent"), "dataset_hash": record.get("dataset_hash")}
