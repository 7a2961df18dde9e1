"""A real S3-protocol server for tests and benchmarks: moto's server (PyPI ``moto[server]``).

Run in its own process on 127.0.0.1 and a free port (``python tests/s3.py --port P``), with
everything in memory. moto checks ``If-None-Match: *`` before it stores an object, but its
request threads can interleave between the check and the store; S3 makes a conditional
write atomic, so this server serialises conditional writes (a lock around the requests
that carry ``If-None-Match``/``If-Match``). tests/test_store.py checks that a race of
conditional writes has exactly one winner per key, as eventkit's commits need.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

BUCKET = "eventkit"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
        "aws_region": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """moto's S3 server in a child process; ``storage_options`` and ``env`` reach it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.storage_options = {**KEYS, "aws_endpoint_url": self.endpoint,
                                "aws_allow_http": "true"}
        #: The same settings as environment variables (child processes inherit them).
        self.env = {k.upper(): v for k, v in self.storage_options.items()}

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--port", str(self.port)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the S3 server exited ({self.proc.returncode})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the S3 server did not listen within 30 s")
        request = urllib.request.Request(f"{self.endpoint}/{BUCKET}", method="PUT")
        urllib.request.urlopen(request, timeout=10).read()  # the bucket

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def url(self, name: str = "") -> str:
        """A fresh prefix in the bucket (``s3://eventkit/<name>-<random>``)."""
        return f"s3://{BUCKET}/{name or 'archive'}-{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _serve(port: int) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialised(environ: dict[str, Any], start_response: Any) -> Any:
        if "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ:
            with lock:  # check and store as one step, as S3 does
                return list(app(environ, start_response))
        return app(environ, start_response)

    make_server("127.0.0.1", port, serialised, threaded=True,
                request_handler=MotoRequestHandler).serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _serve(parser.parse_args().port)
