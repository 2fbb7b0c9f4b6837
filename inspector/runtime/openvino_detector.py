"""``Detector`` over Intel's OpenVINO runtime (CPU): the same ONNX file and checks, another CPU runtime.

OpenVINO reads the registry's ONNX file directly (no conversion, no IR files written, no cache
folder): ``Core.read_model`` takes the bytes whose sha256 was verified against the manifest, so the
bytes that run are the bytes that were checked, exactly as for onnxruntime. Everything around the
inference is ``OnnxDetector``'s: manifest and class-name checks, the model's own metadata (read here
from OpenVINO's ``rt_info['framework']``, where its ONNX reader puts ``metadata_props``), letterbox
pre-processing, decoding, NMS and the output value checks. Only the four runtime hooks differ.

The package is optional (``pip install 'inspector-station[openvino]'``): this module imports it
only when a detector is built, and says which package to install when it is missing. Only the
runtime (``Core``) is used; the conversion tools (``openvino.convert_model``, whose telemetry is
opt-in) are never called, and nothing is downloaded.

Options: ``PERFORMANCE_HINT=LATENCY`` (one request at a time, all cores on it: what a station's
batch-1 pipeline wants), ``ENABLE_CPU_PINNING=False`` (see ``compile_config``) and
``INFERENCE_NUM_THREADS`` from ``threads``.

Input size: site-demo@1 and wafer-demo are static exports (1x3x480x480, 1x3x320x320). OpenVINO accepts a
reshape of such a model to a dynamic H x W at compile time, but inference then fails: the simplified
static export bakes the spatial size into the Reshape constants of the C2PSA attention block
(``/model.10/m/m.0/attn/Reshape``: pattern 1x2x128x225 = 15x15 cells at 480). A 16:9 rect letterbox
(480x288) therefore needs a model exported with ``dynamic=True``, as site-demo@2 is; for such a model
``rect=True`` works here as in ``OnnxDetector`` (the input's dynamic dimensions come from the model). ``allow_spinning`` and the
GPU options of ``OnnxDetector`` have no meaning here and are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inspector.runtime.model_artifact import ModelMetadataError
from inspector.runtime.onnx_detector import OnnxDetector
from inspector.runtime.providers import OPENVINO, OPENVINO_INSTALL_HINT, ProviderUnavailableError
from inspector.util.signal_stack import kept_signal_stack

log = logging.getLogger(__name__)

DEVICE = "CPU"
_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)"}  # OpenVINO element type -> ORT's name for it


def import_openvino() -> Any:
    """The ``openvino`` module, or ``ProviderUnavailableError`` naming the package to install."""
    try:
        import openvino
    except ImportError as e:
        raise ProviderUnavailableError(f"openvino requested but the openvino package is not installed ({e}); "
                                       f"{OPENVINO_INSTALL_HINT}") from None
    return openvino


def _plain(value: Any, kind: type) -> Any:
    """An rt_info value as a Python object (OpenVINO hands out ``OVAny`` wrappers or plain values)."""
    return value.astype(kind) if hasattr(value, "astype") else value


def _dims(partial_shape: Any) -> list[int | None]:
    return [d.get_length() if d.is_static else None for d in partial_shape]


class OpenVinoDetector(OnnxDetector):
    """One YOLOv8/11 detect model in OpenVINO on the CPU; a drop-in ``OnnxDetector`` (same arguments)."""

    def _open(self, model_bytes: bytes, *, providers: Sequence[str], strict: bool, threads: int | None,
              allow_spinning: bool, max_batch: int, trt_cache_dir: Path | str | None) -> None:
        ov = import_openvino()
        others = [p for p in ([providers] if isinstance(providers, str) else providers)
                  if str(p).strip().lower() not in (OPENVINO, "cpu")]
        with kept_signal_stack("OpenVINO's CPU plugin"):  # see inspector/util/signal_stack.py
            core = ov.Core()
            if DEVICE not in core.available_devices:  # pragma: no cover - a CPU plugin is part of every wheel
                raise ProviderUnavailableError(f"openvino {ov.__version__} has no CPU device "
                                               f"(devices: {core.available_devices})")
            try:
                self._ov_model = core.read_model(model=model_bytes)  # the verified bytes, not the path again
            except Exception as e:  # a file OpenVINO's ONNX reader cannot take (an operator it lacks, ...)
                raise ModelMetadataError(f"OpenVINO {ov.__version__} cannot read model {self.path}: {e}") from e
            config = self.compile_config(threads)
            self._compiled = core.compile_model(self._ov_model, DEVICE, config)
            self._request = self._compiled.create_infer_request()
        self.openvino_version = ov.__version__
        self.providers_in_use = [OPENVINO]
        self.provider_notes.append(f"runtime: openvino {ov.__version__} on {DEVICE} "
                                   f"({', '.join(f'{k}={v}' for k, v in config.items())})")
        if others:
            self.provider_notes.append(f"providers {others} are onnxruntime's: not used by this OpenVINO detector")
        for note in self.provider_notes:
            log.info("%s: %s", self.name, note)

    @staticmethod
    def compile_config(threads: int | None) -> dict[str, Any]:
        """OpenVINO CPU properties: one request at a time on all cores (``threads`` caps them), threads not
        pinned to cores: a station shares its cores with decoding, capture and the store, and a pinned
        thread waits for its busy core (2-core machine under load: 146 vs 193 ms per site-demo frame,
        56 vs 163 ms per wafer-demo die, interleaved; see the module doc)."""
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        return config

    def _model_props(self) -> dict[str, str]:
        rt = self._ov_model.get_rt_info()
        if "framework" not in rt:  # an OpenVINO that does not keep ONNX metadata_props: read them from the file
            from inspector.runtime.model_artifact import read_onnx_metadata

            return dict(read_onnx_metadata(self.path).raw)
        fw = _plain(rt["framework"], dict)
        return {str(k): str(_plain(v, str)) for k, v in fw.items()}

    def _io_signature(self) -> tuple[list[tuple[str, list[Any], str]], list[tuple[str, list[Any]]]]:
        def name(port: Any) -> str:
            return port.get_any_name() if port.get_names() else f"#{port.get_index()}"

        inputs = [(name(p), _dims(p.get_partial_shape()), _TYPES.get(p.get_element_type().get_type_name(),
                                                                      p.get_element_type().get_type_name()))
                  for p in self._compiled.inputs]
        outputs = [(name(p), _dims(p.get_partial_shape())) for p in self._compiled.outputs]
        return inputs, outputs

    def _infer(self, x: np.ndarray) -> np.ndarray:
        # share_inputs: OpenVINO reads the pre-processing buffer in place (it is not touched until the
        # output is consumed, under the detector's lock); the output tensor is reused by the next call.
        self._request.infer({0: x}, share_inputs=True)
        return self._request.get_output_tensor(0).data
