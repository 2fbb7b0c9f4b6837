"""Detection runtime: verified ONNX models in onnxruntime, letterbox pre/post-processing, tiling.

Never imports torch or ultralytics (see ``training/pt_detector.py`` for the comparison detector).
"""

from inspector.runtime.model_artifact import (
    ManifestError,
    ModelArtifactError,
    ModelIntegrityError,
    ModelManifest,
    ModelMetadata,
    ModelMetadataError,
    load_manifest,
    manifest_path_for,
    read_onnx_metadata,
    read_verified,
    sha256_file,
    verify_sha256,
    write_manifest,
)
from inspector.runtime.onnx_detector import OnnxDetector
from inspector.runtime.postprocess import OutputShapeError, check_output_layout, nms, postprocess
from inspector.runtime.preprocess import Letterbox, Preprocessor, letterbox, letterbox_params
from inspector.runtime.providers import ProviderUnavailableError, ResolvedProviders, resolve_providers
from inspector.runtime.tiling import Tile, TiledDetector, make_tiles, merge_tile_detections, tile_origins

__all__ = [
    "Letterbox",
    "ManifestError",
    "ModelArtifactError",
    "ModelIntegrityError",
    "ModelManifest",
    "ModelMetadata",
    "ModelMetadataError",
    "OnnxDetector",
    "OutputShapeError",
    "Preprocessor",
    "ProviderUnavailableError",
    "ResolvedProviders",
    "Tile",
    "TiledDetector",
    "check_output_layout",
    "letterbox",
    "letterbox_params",
    "load_manifest",
    "make_tiles",
    "manifest_path_for",
    "merge_tile_detections",
    "nms",
    "postprocess",
    "read_onnx_metadata",
    "read_verified",
    "resolve_providers",
    "sha256_file",
    "tile_origins",
    "verify_sha256",
    "write_manifest",
]
