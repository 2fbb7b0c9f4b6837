"""Choose the runtime and its execution providers from config names, and say why one is not used.

Config names: ``cpu``, ``cuda``, ``tensorrt`` (onnxruntime execution providers) and ``openvino``
(Intel's OpenVINO runtime on the CPU, a runtime of its own: ``inspector.runtime.openvino_detector``).
Nothing GPU-related is imported here: availability is asked of the installed onnxruntime build
(``get_available_providers``) when resolving, and the installed distributions are only looked up
by name to explain a missing provider.

The list is an order of preference; ``choose_runtime`` walks it and the first entry this machine
can run decides the runtime:

- an onnxruntime provider this build lacks is skipped with a note (onnxruntime's ``cpu`` always
  closes the list, as before);
- ``openvino`` runs the model in OpenVINO when the ``openvino`` package is installed. When it is not:
  with entries after it (``[openvino, cpu]``: "OpenVINO when installed, else onnxruntime") they are
  tried, with a note; as the last entry, or with ``strict``, it is an error naming the package to
  install, because a station configured for OpenVINO alone would otherwise run about half as fast
  without anyone noticing.

Why not onnxruntime's own OpenVINO execution provider: it ships as ``onnxruntime-openvino``, a
build that *replaces* ``onnxruntime`` (both own the ``onnxruntime`` module), so it could be had only
by swapping the base dependency, like ``onnxruntime-gpu``, and it excludes the GPU build. The
``openvino`` package installs beside onnxruntime and reads the same ONNX file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
PROVIDER_NAMES: dict[str, str] = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT}
_SHORT = {v: k for k, v in PROVIDER_NAMES.items()}
OPENVINO = "openvino"  # a runtime of its own (not an onnxruntime provider): see choose_runtime
ONNXRUNTIME = "onnxruntime"
CONFIG_NAMES: tuple[str, ...] = (*PROVIDER_NAMES, OPENVINO)  # every name a config may list
OPENVINO_INSTALL_HINT = ("install it with `.venv/bin/python -m pip install openvino` "
                         "(or the project's extra: `pip install 'inspector-station[openvino]'`)")

ProviderSpec = tuple[str, dict[str, Any]]


class ProviderUnavailableError(RuntimeError):
    """A requested provider is not available and the config asked for strict providers."""


class ResolvedProviders(NamedTuple):
    providers: list[ProviderSpec]  # (ORT provider name, options), in priority order, for InferenceSession
    notes: list[str]  # human-readable: what was chosen and why a requested one was not

    @property
    def names(self) -> list[str]:
        return [p for p, _ in self.providers]


def default_trt_cache_dir() -> Path:
    """Where TensorRT engines are cached (building one takes minutes; the cache makes restarts fast)."""
    env = os.environ.get("INSPECTOR_TRT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inspector" / "tensorrt"


def provider_options(
    name: str,
    *,
    device_id: int = 0,
    fp16: bool = True,
    trt_cache_dir: Path | str | None = None,
    trt_profile: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Sensible options per provider (values are strings where ORT's C API wants strings)."""
    if name == CUDA:
        # HEURISTIC: the default EXHAUSTIVE search makes the first inference take seconds.
        return {"device_id": device_id, "cudnn_conv_algo_search": "HEURISTIC"}
    if name == TENSORRT:
        cache = Path(trt_cache_dir) if trt_cache_dir is not None else default_trt_cache_dir()
        opts: dict[str, Any] = {
            "device_id": device_id,
            "trt_fp16_enable": fp16,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        }
        if trt_profile:  # dynamic input shapes need an optimisation profile: "images:1x3x640x640"
            opts.update(trt_profile)
        return opts
    return {}


class RuntimeChoice(NamedTuple):
    runtime: str  # ONNXRUNTIME or OPENVINO
    providers: tuple[str, ...]  # config names for onnxruntime (OPENVINO: ("openvino",))
    notes: list[str]  # why an earlier preference was passed over


def openvino_installed() -> bool:
    """Whether the ``openvino`` package can be imported (looked up, not imported: importing it takes ~1 s)."""
    import importlib.util

    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False


def _key(raw: Any) -> str:
    key = str(raw).strip().lower()
    if key not in CONFIG_NAMES:
        raise ValueError(f"unknown execution provider {raw!r}; choose from {sorted(CONFIG_NAMES)}")
    return key


def choose_runtime(
    requested: Sequence[str] | str,
    strict: bool = False,
    *,
    available: Sequence[str] | None = None,
    has_openvino: bool | None = None,
) -> RuntimeChoice:
    """Which runtime runs a model configured with ``requested`` (see the module doc for the rules).

    ``available`` defaults to onnxruntime's providers (asked only when needed), ``has_openvino`` to
    ``openvino_installed()``. Raises ``ProviderUnavailableError`` for an OpenVINO that is required
    but not installed, ``ValueError`` for an unknown name.
    """
    names = [requested] if isinstance(requested, str) else list(requested or ["cpu"])
    keys = list(dict.fromkeys(_key(r) for r in names))
    if OPENVINO not in keys:
        return RuntimeChoice(ONNXRUNTIME, tuple(keys), [])
    i = keys.index(OPENVINO)
    before, after = keys[:i], keys[i + 1:]
    if before:  # an onnxruntime provider preferred over OpenVINO wins when this build has it (cpu always does)
        if available is None:
            import onnxruntime as ort

            available = ort.get_available_providers()
        if any(PROVIDER_NAMES[k] in available for k in before) or "cpu" in before:
            return RuntimeChoice(ONNXRUNTIME, tuple(k for k in keys if k != OPENVINO), [])
    if has_openvino is None:
        has_openvino = openvino_installed()
    notes = [f"{k} requested but unavailable: {unavailable_reason(PROVIDER_NAMES[k], available or [])}"
             for k in before]
    if has_openvino:
        return RuntimeChoice(OPENVINO, (OPENVINO,), notes)
    missing = f"openvino requested but the openvino package is not installed; {OPENVINO_INSTALL_HINT}"
    if strict or not after:
        raise ProviderUnavailableError("; ".join([*notes, missing]) + (
            " (strict providers: not falling back)" if strict and after else
            " (no other provider is listed after it; add `cpu` after `openvino` to fall back to onnxruntime)"))
    return RuntimeChoice(ONNXRUNTIME, tuple(after), [*notes, f"{missing} — falling back to {', '.join(after)}"])


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def unavailable_reason(provider: str, available: Sequence[str]) -> str:
    """Why ``provider`` is missing from this onnxruntime build, in words an operator can act on."""
    # Azure is a remote-endpoint provider, not compute hardware: leave it out of the explanation.
    local = [p for p in available if p != "AzureExecutionProvider"]
    have = ", ".join(_SHORT.get(p, p.removesuffix("ExecutionProvider")) for p in local) or "none"
    gpu_build = _installed("onnxruntime-gpu")
    if provider in (CUDA, TENSORRT) and gpu_build is None:
        return (f"onnxruntime-gpu is not installed (this build has: {have}); "
                "install it with installers/setup.sh --gpu")
    if provider == TENSORRT:
        return (f"onnxruntime-gpu {gpu_build} is installed but its TensorRT provider is not available "
                f"(this build has: {have}); the TensorRT libraries (libnvinfer) are probably missing")
    if provider == CUDA:
        return (f"onnxruntime-gpu {gpu_build} is installed but CUDA is not available (this build has: {have}); "
                "check the NVIDIA driver and the CUDA/cuDNN libraries")
    return f"this onnxruntime build has: {have}"


def resolve_providers(
    requested: Sequence[str],
    strict: bool = False,
    *,
    available: Sequence[str] | None = None,
    device_id: int = 0,
    fp16: bool = True,
    trt_cache_dir: Path | str | None = None,
    trt_profile: Mapping[str, str] | None = None,
) -> ResolvedProviders:
    """Map config names to ORT providers, keeping the requested order; CPU always closes the list.

    A requested provider the build lacks is dropped with a note (or ``ProviderUnavailableError``
    when ``strict``). ``available`` defaults to ``onnxruntime.get_available_providers()``.
    """
    if isinstance(requested, str):
        requested = [requested]
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    wanted: list[str] = []
    for raw in requested or ["cpu"]:
        key = str(raw).strip().lower()
        if key == OPENVINO:
            raise ValueError("'openvino' is not an onnxruntime execution provider: choose_runtime() picks the "
                             "runtime, and OpenVinoDetector runs it (the station's ensemble builder does both)")
        if key not in PROVIDER_NAMES:
            raise ValueError(f"unknown execution provider {raw!r}; choose from {sorted(CONFIG_NAMES)}")
        if PROVIDER_NAMES[key] not in wanted:
            wanted.append(PROVIDER_NAMES[key])
    chosen: list[str] = []
    notes: list[str] = []
    missing: list[str] = []  # one line per requested provider this build lacks
    for p in wanted:
        if p in available:
            chosen.append(p)
        else:
            missing.append(f"{_SHORT[p]} requested but unavailable: {unavailable_reason(p, available)}")
    if missing and strict:
        raise ProviderUnavailableError("; ".join(missing) + " (strict providers: not falling back)")
    if CPU not in chosen:
        chosen.append(CPU)  # always last: ORT runs there what a GPU provider cannot
    notes.extend(f"{m} — falling back to {_SHORT[chosen[0]]}" for m in missing)
    if TENSORRT in chosen:
        cache = Path(trt_cache_dir) if trt_cache_dir is not None else default_trt_cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            notes.append(f"tensorrt engine cache {cache} cannot be created ({e}): engines will be rebuilt each start")
    specs = [(p, provider_options(p, device_id=device_id, fp16=fp16, trt_cache_dir=trt_cache_dir,
                                  trt_profile=trt_profile)) for p in chosen]
    notes.insert(0, f"execution providers: {', '.join(_SHORT[p] for p in chosen)}")
    return ResolvedProviders(specs, notes)


def short_name(provider: str) -> str:
    """``CUDAExecutionProvider`` -> ``cuda`` (unknown names are returned unchanged)."""
    return _SHORT.get(provider, provider)
