"""Choose onnxruntime execution providers from config names, and say why one is not used.

Config names: ``cpu``, ``cuda``, ``tensorrt``. Nothing GPU-related is imported here: availability
is asked of the installed onnxruntime build (``get_available_providers``) when resolving, and the
installed distributions are only looked up by name to explain a missing provider.
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
        if key not in PROVIDER_NAMES:
            raise ValueError(f"unknown execution provider {raw!r}; choose from {sorted(PROVIDER_NAMES)}")
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
