"""Load station configs from YAML: defaults merge, validation with readable errors, hashing, snapshots.

Every problem is reported as a :class:`ConfigIssue` naming the file, the field path
(``models[0].imgsz``) and what was expected, and all problems of a file are reported at once.
Checks that span several fields (see ``StationConfig._cross_field``) run once every field is valid.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml
from pydantic import BaseModel, ValidationError

from inspector.config.schema import PATTERN_HINTS, FieldIssues, StationConfig
from inspector.util.atomic import make_private_dirs, write_text_atomic
from inspector.util.canonical import canonical_json as shared_canonical_json
from inspector.util.canonical import sha256_text
from inspector.util.redact import redact_text

DATA_DIR_ENV = "INSPECTOR_DATA"
DEFAULT_DATA_DIR = "inspector-data"
_MAX_EXTENDS_DEPTH = 16


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file."""

    file: str
    path: str  # field path such as "rules[2].thresholds.scratch", "line 4:7" for YAML syntax, "" for the whole file
    message: str  # what was wrong and what was expected

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}" if self.path else f"{self.file}: {self.message}"


class ConfigError(Exception):
    """A config could not be loaded; ``errors`` lists every problem found."""

    def __init__(self, errors: list[ConfigIssue]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __reduce__(self):  # keep `errors` when pickled (worker processes, logging handlers)
        return (type(self), (self.errors,))


# --------------------------------------------------------------------------------------------
# YAML reading
# --------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: YAML keeps the last one silently, hiding mistakes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key; the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, name: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError([ConfigIssue(name, where, f"invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(name, "", f"invalid YAML: {exc}")]) from None


def _read_mapping(path: Path) -> dict:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(name, "", "file not found; expected a YAML station config")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(name, "", "is a folder; expected a YAML station config file")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(name, "", f"expected UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(name, "", f"cannot read file: {exc.strerror}")]) from None
    return _as_mapping(_parse_yaml(text, name), name)


def _as_mapping(data: Any, name: str) -> dict:
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        msg = f"expected a mapping of config sections (station:, sources:, ...) at the top level, got {got}"
        raise ConfigError([ConfigIssue(name, "", msg)])
    return data


# --------------------------------------------------------------------------------------------
# Defaults merge
# --------------------------------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    """Merge ``override`` over ``base``: dicts recursively, anything else (lists too) replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_extends(data: dict, name: str, base_dir: Path, chain: tuple[Path, ...]) -> dict:
    """Merge the file named by ``extends:`` (recursively) under ``data``."""
    if "extends" not in data:
        return data
    data = dict(data)
    ref = data.pop("extends")
    if not isinstance(ref, str) or not ref:
        raise ConfigError([ConfigIssue(name, "extends", f"expected a relative path of a YAML file, got {ref!r}")])
    target = (base_dir / ref).resolve()
    if target in chain:
        cycle = " -> ".join(str(p) for p in (*chain, target))
        raise ConfigError([ConfigIssue(name, "extends", f"extends cycle: {cycle}")])
    if len(chain) >= _MAX_EXTENDS_DEPTH:
        raise ConfigError([ConfigIssue(name, "extends", f"expected at most {_MAX_EXTENDS_DEPTH} levels of extends")])
    base = _read_mapping(target)
    base = _resolve_extends(base, str(target), target.parent, (*chain, target))
    return deep_merge(base, data)


def _apply_source_defaults(data: dict, name: str) -> tuple[dict, set[tuple[int, str]]]:
    """Deep-merge ``source_defaults`` into every source (the source's own keys win).

    Returns the merged data and the (source index, key) pairs that came only from the defaults,
    so an error on such a key can say where it came from.
    """
    if "source_defaults" not in data:
        return data, set()
    data = dict(data)
    defaults = data.pop("source_defaults")
    if defaults is None:
        return data, set()
    if not isinstance(defaults, dict):
        msg = f"expected a mapping of source fields, got {_type_word(defaults)}"
        raise ConfigError([ConfigIssue(name, "source_defaults", msg)])
    inherited: set[tuple[int, str]] = set()
    sources = data.get("sources")
    if isinstance(sources, list):
        merged = []
        for i, src in enumerate(sources):
            if isinstance(src, dict):
                inherited.update((i, k) for k in defaults if k not in src)
                src = deep_merge(defaults, src)
            merged.append(src)
        data["sources"] = merged
    return data, inherited


# --------------------------------------------------------------------------------------------
# Validation errors -> ConfigIssues
# --------------------------------------------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional so a path walker sees the real container / model type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_members(tp: Any) -> dict[str, type[BaseModel]]:
    """Tag value -> model for a discriminated union of models (empty if ``tp`` is not one)."""
    if typing.get_origin(tp) not in (Union, types.UnionType):
        return {}
    members: dict[str, type[BaseModel]] = {}
    for arg in typing.get_args(tp):
        arg = _unwrap(arg)
        if _is_model(arg) and "type" in arg.model_fields:
            for tag in typing.get_args(arg.model_fields["type"].annotation):
                members[tag] = arg
    return members


def _walk(loc: tuple) -> tuple[list[Union[str, int]], Any]:
    """Turn a pydantic loc into the user-facing path, dropping union tags and internal steps.

    Also returns the schema type at the end of the path (a model class, when the loc ends on one).
    """
    parts: list[Union[str, int]] = []
    tp: Any = StationConfig
    for item in loc:
        tp = _unwrap(tp)
        members = _union_members(tp)
        if members and item in members:  # discriminated-union step: the tag is not part of the user's path
            tp = members[item]
            continue
        if item == "[key]":
            continue
        if isinstance(item, int):
            parts.append(item)
            args = typing.get_args(tp)
            tp = args[0] if typing.get_origin(tp) in (list, tuple) and args else None
            continue
        if _is_model(tp):
            field = tp.model_fields.get(item)
            if field is None:
                parts.append(item)  # an unknown (extra) key: keep it in the path
                tp = None
            else:
                parts.append(item)
                tp = field.annotation
            continue
        if typing.get_origin(tp) is dict:
            parts.append(item)
            tp = typing.get_args(tp)[1]
            continue
        if isinstance(item, str) and ("[" in item or item.startswith("function-")):
            continue  # pydantic-internal step such as "function-after[...]"
        parts.append(item)
        tp = None
    return parts, _unwrap(tp) if tp is not None else None


def _format_path(parts: list[Union[str, int]]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_word(value: Any) -> str:
    words = {dict: "a mapping", list: "a list", str: "text", type(None): "nothing (null)"}
    return words.get(type(value), type(value).__name__)


# pydantic error type -> (words, ctx key of the limit)
_COMPARE = {
    "greater_than": ("greater than", "gt"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}


def _message(err: dict, model_at_parent: Any) -> str:
    """Plain message for one pydantic error: what was wrong and what was expected."""
    kind, msg, ctx, value = err["type"], err["msg"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        allowed = sorted(model_at_parent.model_fields) if _is_model(model_at_parent) else []
        if not allowed:
            return "unknown field"
        hint = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown field{suggestion}; allowed: {', '.join(allowed)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (key: value), got {_type_word(value)}"
    if kind == "list_type":
        return f"expected a list, got {_type_word(value)}"
    if kind in _COMPARE:
        words, key = _COMPARE[kind]
        return f"expected a number {words} {ctx.get(key)}, got {_show(value)}"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        got = ctx.get("actual_length", len(value) if hasattr(value, "__len__") else "?")
        return f"expected {bound} {n} item{'s' if n != 1 else ''}, got {got}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        return f"expected {PATTERN_HINTS.get(pattern, 'text matching ' + pattern)}, got {_show(value)}"
    if kind.startswith("value_error") or kind == "assertion_error":
        return msg.split(", ", 1)[1] if msg.startswith(("Value error, ", "Assertion failed, ")) else msg
    if msg.startswith("Input should be "):
        # "Input should be a valid integer, unable to parse ..." -> "expected a valid integer, got 'x'"
        expected = msg[len("Input should be "):]
        if kind != "literal_error":
            expected = expected.split(", ", 1)[0]
        return f"expected {expected}, got {_show(value)}"
    if msg.startswith("String should have "):
        return f"expected {msg[len('String should have '):]}, got {_show(value)}"
    return f"{msg[:1].lower()}{msg[1:]}, got {_show(value)}"


def _issues_from_validation(exc: ValidationError, name: str, inherited: set[tuple[int, str]]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        parent_parts, parent_type = _walk(loc[:-1]) if loc else ([], StationConfig)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            parts, tp = _walk(loc)
            allowed = ", ".join(_union_members(_unwrap(tp))) or err.get("ctx", {}).get("expected_tags", "")
            if err["type"] == "union_tag_invalid":
                message = f"unknown type {err['ctx']['tag']!r}; allowed: {allowed}"
            else:
                message = f"missing `type`; allowed: {allowed}"
            issues.append(ConfigIssue(name, _format_path([*parts, "type"]), message))
            continue
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, FieldIssues):  # a model validator's several issues, each at its own path
            parts, _ = _walk(loc)
            for sub_loc, sub_msg in error.issues:
                issues.append(ConfigIssue(name, _format_path([*parts, *sub_loc]), sub_msg))
            continue
        parts, _ = _walk(loc)
        message = _message(err, parent_type)
        if len(parts) == 3 and parts[0] == "sources" and (parts[1], parts[2]) in inherited:
            message += " (inherited from source_defaults)"
        issues.append(ConfigIssue(name, _format_path(parts), message))
    return issues


def _validate(data: dict, name: str, inherited: set[tuple[int, str]]) -> StationConfig:
    try:
        return StationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_issues_from_validation(exc, name, inherited)) from None


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load_config(path: Union[str, Path]) -> StationConfig:
    """Load and validate a station config file; raises ConfigError listing every problem."""
    path = Path(path)
    name = str(path)
    data = _read_mapping(path)
    data = _resolve_extends(data, name, path.resolve().parent, (path.resolve(),))
    data, inherited = _apply_source_defaults(data, name)
    return _validate(data, name, inherited)


def load_config_text(text: str, name: str = "<string>", base_dir: Optional[Union[str, Path]] = None) -> StationConfig:
    """Load a config from YAML text (tests, GUI editors); ``extends`` resolves against ``base_dir`` (default: cwd)."""
    data = _as_mapping(_parse_yaml(text, name), name)
    data = _resolve_extends(data, name, Path(base_dir) if base_dir is not None else Path.cwd(), ())
    data, inherited = _apply_source_defaults(data, name)
    return _validate(data, name, inherited)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _ascii_escape(m: re.Match[str]) -> str:
    return json.dumps(m.group())[1:-1]  # "\u00e9"; a pair of surrogate escapes beyond U+FFFF


def canonical_json(cfg: StationConfig) -> str:
    """Canonical JSON of a config: the bytes that config_hash hashes and snapshot_config stores.

    The shared canonical form (``inspector.util.canonical``) with every non-ASCII character written
    as a ``\\u`` escape: config hashes have always been computed over that ASCII form, and stored
    decisions point at configs by those hashes."""
    return _NON_ASCII.sub(_ascii_escape, shared_canonical_json(cfg.model_dump(mode="json")))


def config_hash(cfg: StationConfig) -> str:
    """sha256 of the validated config (defaults filled in), so YAML layout and comments do not matter."""
    return sha256_text(canonical_json(cfg))


def resolve_data_dir(cfg: StationConfig, env: Optional[Mapping[str, str]] = None) -> Path:
    """Absolute data folder: $INSPECTOR_DATA, else storage.data_dir, else ./inspector-data (from the cwd)."""
    env = os.environ if env is None else env
    chosen = env.get(DATA_DIR_ENV) or cfg.storage.data_dir or DEFAULT_DATA_DIR
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def snapshot_config(cfg: StationConfig, folder: Union[str, Path]) -> Path:
    """Store the config at folder/configs/<hash>.json (once), so decisions can point at it by hash.
    URL credentials are masked in the stored copy (the hash is still that of the full config)."""
    target_dir = Path(folder) / "configs"
    target = target_dir / f"{config_hash(cfg)}.json"
    if target.exists():  # content-addressed: same name, same bytes
        return target
    make_private_dirs(target_dir)
    return write_text_atomic(target, redact_text(canonical_json(cfg)), durable=True)  # never half a snapshot


def export_json_schema() -> dict:
    """JSON schema of station configs for editors (e.g. the YAML language server)."""
    schema = StationConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Inspector station config"
    # Keys handled by the loader before validation; listed so editors do not flag them.
    schema["properties"]["extends"] = {
        "type": "string",
        "description": "Relative path of a base config deep-merged under this one (dicts merged, lists replaced).",
    }
    schema["properties"]["source_defaults"] = {
        "type": "object",
        "description": "Source fields deep-merged into every entry of `sources` (the source's own keys win).",
    }
    return schema


def write_json_schema(path: Union[str, Path]) -> Path:
    """Write export_json_schema() to ``path`` (stable formatting, so regenerating gives no diff)."""
    path = Path(path)
    text = json.dumps(export_json_schema(), indent=2, sort_keys=True) + "\n"
    return write_text_atomic(path, text, mode=0o644)  # for editors, so readable by all, as before


def default_config_path() -> Path:
    """Path of the shipped wafer demo config (repo checkout first, then the installed package copy)."""
    name = "wafer-demo.yaml"
    repo = Path(__file__).resolve().parents[2] / "station_configs" / name
    return repo if repo.exists() else Path(__file__).resolve().parent / "station_configs" / name
