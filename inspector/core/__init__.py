"""Pure inspection logic: numpy and the standard library only (no Qt, no I/O, no runtimes)."""

from inspector.core.decision import Decision, Reason, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame

__all__ = ["Decision", "Detections", "Frame", "Reason", "Verdict"]
