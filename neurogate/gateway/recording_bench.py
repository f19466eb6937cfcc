"""The benchmark's second gateway: the same ``neurogate serve``, with recording on.

``neurogate bench`` streams through it exactly as through the first gateway (the clinic's
subjects consent to clinical monitoring, which is recorded), so the report shows the live
path's figures with recording on beside those with it off. Its key-encryption key file
lives beside, not inside, its data directory.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RecordingGateway:
    """A benchmark gateway process that records, and its clinic."""

    server: Any
    clinic: Any

    @classmethod
    def start(cls, tmp: Path) -> RecordingGateway:
        from neurogate.bench._procs import ServerProcess, free_port, gateway_env
        from neurogate.bench._seed import create_admin, open_clinic

        data = tmp / "var-recording"
        create_admin(data)
        port = free_port()
        argv = [sys.executable, "-m", "neurogate", "serve", "--host", "127.0.0.1",
                "--port", str(port)]
        env = {**gateway_env(data),
               "NEUROGATE_RECORDING_KEK_FILE": str(tmp / "recording-keys" / "kek")}
        server = ServerProcess(argv, port=port, env=env, log=tmp / "gateway-recording.log")
        server.start()
        try:
            return cls(server, open_clinic(server.url))
        except Exception:
            server.stop()
            raise

    def stop(self) -> None:
        self.clinic.http.close()
        self.server.stop()


__all__ = ["RecordingGateway"]
