"""A fork server for ``bench/faults_kill.py``: imports the station once, then forks a station per kill.

    python bench/faults_kill_zygote.py SOCKET_FD

Started with one end of a Unix socket pair (``SOCKET_FD``, inherited). It imports everything
``bench/durability_child.py`` needs (Python, numpy, OpenCV, ONNX Runtime, the station: seconds on
a busy machine), stays single-threaded, and then serves two requests on the socket:

- ``FORK <json argv>`` with two file descriptors attached (stdout, stderr): forks; the child puts
  them on fds 1 and 2 and runs ``durability_child.main(argv)``: the same code the durability
  benchmark runs in a fresh interpreter, minus the imports. Answer: ``PID <pid>``.
- ``WAIT <pid>``: reaps that child. Answer: ``EXIT <status>`` (negative: killed by that signal).

The station process a kill hits is therefore the real station (built from its config, real
inference, real store); only the interpreter start-up and imports, done once here, are not
repeated per kill.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no BLAS thread pool in the process that forks
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import durability_child  # noqa: E402  (imports the station, ONNX Runtime, OpenCV, numpy)
import onnxruntime  # noqa: E402,F401  (the child builds sessions: import it before forking)
from inspector.station import station as _station  # noqa: E402,F401


def _child(argv: list[str], out_fd: int, err_fd: int, sock: socket.socket) -> None:
    try:
        sock.close()
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        code = durability_child.main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        code = 1
    os._exit(code or 0)


def main() -> int:
    sock = socket.socket(fileno=int(sys.argv[1]))
    buf = b""
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 65536, 2)
        if not msg:
            return 0
        buf = msg
        cmd, _, rest = buf.decode().strip().partition(" ")
        if cmd == "FORK":
            out_fd, err_fd = fds
            pid = os.fork()
            if pid == 0:
                _child(json.loads(rest), out_fd, err_fd, sock)
            os.close(out_fd)
            os.close(err_fd)
            sock.sendall(f"PID {pid}\n".encode())
        elif cmd == "WAIT":
            _, status = os.waitpid(int(rest), 0)
            sock.sendall(f"EXIT {os.waitstatus_to_exitcode(status)}\n".encode())
        elif cmd == "QUIT":
            return 0
        else:
            sock.sendall(f"ERR unknown request {cmd!r}\n".encode())


if __name__ == "__main__":
    sys.exit(main())
