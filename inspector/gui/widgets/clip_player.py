"""An evidence clip played in the app: OpenCV decodes (PySide6-Essentials has no QtMultimedia).

A decoder thread reads the MP4 with ``cv2.VideoCapture``, shrinks each frame to the view's size
and turns it into a QImage (allowed off the GUI thread; QPixmap is not), then waits on a small
bounded queue. A QTimer on the GUI thread takes one frame per tick at the clip's frame rate: the
GUI thread never decodes and never waits; when the decoder is behind, the tick shows nothing new.
At the end the clip loops. Loading shows the first frame (a poster); Space (the view's key) plays
and pauses.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import cv2
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from inspector.gui.images import to_qimage

log = logging.getLogger(__name__)

BUFFER = 12            # decoded frames waiting for the timer: memory stays a few frames
_END = object()        # the decoder reached the end of the file
_PUT_WAIT_S = 0.1      # how often a decoder blocked on a full queue looks at its stop flag


class ClipDecoder(threading.Thread):
    """Decodes one file into ``frames`` (QImages, then ``_END``) until stopped."""

    def __init__(self, path: Path, max_size: tuple[int, int]) -> None:
        super().__init__(name=f"clip-{path.name}", daemon=True)
        self.path = path
        self.max_w, self.max_h = max(16, max_size[0]), max(16, max_size[1])
        self.frames: queue.Queue[object] = queue.Queue(BUFFER)
        self.fps = 0.0
        self.count = 0       # frames in the file (as the container says)
        self.error: str | None = None
        self.opened = threading.Event()
        self._stop_flag = threading.Event()

    def stop(self) -> None:
        self._stop_flag.set()

    def run(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                self.error = f"cannot open {self.path.name}"
                return
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 10.0
            self.count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self.opened.set()
            while not self._stop_flag.is_set():
                ok, frame = cap.read()
                if not ok:
                    break
                self._put(to_qimage(self._fit(frame)))
            self._put(_END)
        except Exception as e:  # noqa: BLE001 - shown in the player instead of a frame
            log.exception("clip decode failed: %s", self.path)
            self.error = str(e)
        finally:
            cap.release()
            self.opened.set()

    def _fit(self, frame):
        h, w = frame.shape[:2]
        s = min(self.max_w / w, self.max_h / h)  # to the view's size, here rather than on the GUI thread
        if abs(s - 1.0) > 0.02:
            frame = cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))),
                               interpolation=cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR)
        return frame

    def _put(self, item: object) -> None:
        while not self._stop_flag.is_set():
            try:
                self.frames.put(item, timeout=_PUT_WAIT_S)
                return
            except queue.Full:
                continue


class ClipPlayer(QWidget):
    """Shows a clip frame by frame; ``load(path)`` then ``play()`` / ``pause()`` / ``toggle()``."""

    stateChanged = Signal(str)  # "empty", "playing", "paused", "error"

    def __init__(self, parent: QWidget | None = None, *, loop: bool = True) -> None:
        super().__init__(parent)
        self.picture = QLabel("no clip", self)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(320, 180)
        self.picture.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # frames must not grow it
        self.picture.setStyleSheet("background: #202020; color: #c8c8c8;")
        self.caption = QLabel("", self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.picture, 1)
        lay.addWidget(self.caption)
        self.loop = loop
        self.path: Path | None = None
        self.state = "empty"
        self.frames_shown = 0      # frames shown since load (all loops)
        self.position = 0          # frame index in the current pass
        self.loops = 0
        self.last_image: QImage | None = None
        self._decoder: ClipDecoder | None = None
        self._poster = False
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)

    # --- control ----------------------------------------------------------------------------------
    def load(self, path: Path | None, autoplay: bool = False) -> None:
        """Stop what plays, then prepare ``path`` (None: show that there is no clip)."""
        self._stop_decoder()
        self.path, self.frames_shown, self.position, self.loops, self.last_image = path, 0, 0, 0, None
        self.picture.clear()
        if path is None:
            self.picture.setText("no clip")
            self.caption.setText("")
            self._set_state("empty")
            return
        self.picture.setText("loading clip...")
        self.caption.setText(f"{path.name}  (Space plays)")
        self._set_state("paused")
        # Decode now and show the first frame as a poster: the clip is seen before it is played.
        self._start_decoder()
        self._poster = True
        self.timer.start(30)
        if autoplay:
            self.play()

    def play(self) -> None:
        if self.path is None or self.state == "playing":
            return
        if self._decoder is None:
            self._start_decoder()
        self._poster = False
        self._set_state("playing")
        self.timer.start(self._interval())

    def pause(self) -> None:
        if self.state == "playing":
            self.timer.stop()
            self._set_state("paused")

    def toggle(self) -> None:
        self.pause() if self.state == "playing" else self.play()

    def stop(self) -> None:
        """Stop playing and the decoder thread (the view is closing or another incident is shown)."""
        self.timer.stop()
        self._stop_decoder()
        self._poster = False
        if self.state == "playing":
            self._set_state("paused")

    # --- internals --------------------------------------------------------------------------------
    def _interval(self) -> int:
        fps = self._decoder.fps if self._decoder is not None and self._decoder.fps else 10.0
        return max(10, round(1000.0 / fps))

    def _start_decoder(self) -> None:
        assert self.path is not None
        size = self.picture.size()
        self._decoder = ClipDecoder(self.path, (size.width(), size.height()))
        self._decoder.start()

    def _stop_decoder(self) -> None:
        d, self._decoder = self._decoder, None
        if d is not None:
            d.stop()  # it notices within _PUT_WAIT_S; nobody waits for it here

    def _tick(self) -> None:
        d = self._decoder
        if d is None:
            return
        if d.error:
            self.timer.stop()
            self.picture.setText(f"clip unreadable: {d.error}")
            self._set_state("error")
            return
        try:
            item = d.frames.get_nowait()
        except queue.Empty:
            return  # the decoder is behind: keep the last frame up
        if self.timer.interval() != self._interval():
            self.timer.setInterval(self._interval())  # the file's own rate, known once opened
        if item is _END:
            self._stop_decoder()
            if self.loop:
                self.loops += 1
                self.position = 0
                self._start_decoder()
            else:
                self.timer.stop()
                self._set_state("paused")
            return
        assert isinstance(item, QImage)
        if self._poster:  # the first frame is up: wait for Space
            self._poster = False
            self.timer.stop()
        self.last_image = item
        self.picture.setPixmap(QPixmap.fromImage(item))
        self.frames_shown += 1
        self.position += 1
        total = f"/{d.count}" if d.count else ""
        self.caption.setText(f"{self.path.name if self.path else ''}  frame {self.position}{total}  "
                             f"{d.fps:.0f} fps  {'(loop ' + str(self.loops) + ')' if self.loops else ''}")

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.stop()
        super().closeEvent(event)
