"""A synthetic construction-site camera: workers with and without hard hats and hi-vis vests walking
a site, passing behind containers, stacks and each other, with exact ground truth per frame.

Honestly synthetic (see ``datasets/synthetic-site.md``): stylised people drawn with OpenCV
primitives on a rendered site, for the offline demo, tests and benches, not a stand-in for real
footage. The package: ``scene`` (perspective, background, occluders), ``people`` (a worker's look,
its parts' geometry and drawing), ``motion`` (visits: enter, walk, pause, leave) and ``camera``
(``SyntheticSiteCamera``, ``SiteTruth``, ``render_video``).
"""

from inspector.capture.synthetic_site.camera import (
    CLASS_ID,
    CLASS_NAMES,
    SiteTruth,
    SyntheticSiteCamera,
    WorkerTruth,
    render_video,
)

# Bump when pixels or truth for a given seed change (written into dataset manifests).
GENERATOR_VERSION = "1.0"

__all__ = ["CLASS_NAMES", "CLASS_ID", "GENERATOR_VERSION", "SiteTruth", "SyntheticSiteCamera", "WorkerTruth",
           "render_video"]
