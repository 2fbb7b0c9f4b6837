"""The station process that ``bench/durability.py`` kills: a real ``Station`` logging until SIGKILL.

    python bench/durability_child.py --config station.yaml --registry REG --data-dir DATA

Builds the station from its config (models from the registry, the data folder's database), starts
it, and writes one line ``ACK <frame_id> <submitted>`` to stdout for every decision the store has
acknowledged, i.e. only after the transaction holding it COMMITTED (``Station(on_ack=...)``);
``submitted`` is how many records the station had handed to the store by then (the difference is
what was in flight). Lines go straight to the file descriptor (one ``write`` each, no buffering),
so a line the parent reads is a promise the station made before it was killed.

``--unsafe-ack-before-submit`` (hidden; for the harness's self-test only) writes the ACK line
*before* the record is even handed to the store: the promise the station must never make. The
harness must then report lost decisions, which shows that it can detect them.

The run ends only when killed (the source is a practically endless synthetic wafer line); if it
ends by itself the process stops the station gracefully and exits 0, which the harness reports.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.config import config_hash, load_config  # noqa: E402
from inspector.station import station as station_module  # noqa: E402
from inspector.station.station import Station  # noqa: E402
from inspector.station.store_sink import StoreSink  # noqa: E402

_OUT = sys.stdout.fileno()
_write_lock = threading.Lock()


def emit(line: str) -> None:
    """One unbuffered write per line (a pipe write under PIPE_BUF bytes is atomic)."""
    data = (line + "\n").encode()
    with _write_lock:
        os.write(_OUT, data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A station logging decisions until it is killed.")
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--registry", required=True, type=Path)
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--unsafe-ack-before-submit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    holder: dict[str, Station] = {}

    def on_ack(frame_id: str) -> None:  # the writer thread, after COMMIT
        st = holder.get("station")
        submitted = st.store.submitted if st is not None and st.store is not None else -1
        emit(f"ACK {frame_id} {submitted}")

    if args.unsafe_ack_before_submit:
        class UnsafeSink(StoreSink):
            """Promises before the record even reaches the store (the harness's negative control)."""

            def accept_result(self, result):  # type: ignore[override]
                emit(f"ACK {result.frame.frame_id} {self.submitted + 1}")
                return super().accept_result(result)

        station_module.StoreSink = UnsafeSink  # type: ignore[misc]
        ack = None
    else:
        ack = on_ack

    st = Station.from_config(cfg, config_hash(cfg), registry_root=args.registry, data_dir=args.data_dir,
                             on_ack=ack)
    holder["station"] = st
    st.start()
    emit(f"RUN {st.run_id}")
    assert st.pipeline is not None
    while not st.pipeline.wait(0.5):
        pass
    st.stop()
    emit("END")
    return 0


if __name__ == "__main__":
    sys.exit(main())
