"""Local stand-ins for S3 and DynamoDB, shared by the demo and the tests.

* S3: moto in server mode (a ``ThreadedMotoServer`` in this process).
* DynamoDB: dynalite (Node.js, LevelDB) as a child process; where Node.js
  >= 20 or ``node_modules/dynalite`` is missing, moto serves DynamoDB too.

Everything binds 127.0.0.1. Code reaches these servers exactly as it reaches
AWS, through the endpoint URLs in its configuration.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import boto3
import requests
from moto.server import ThreadedMotoServer

from chalicelib.config import PROJECT_DIR

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
DYNALITE_CLI = PROJECT_DIR / "node_modules" / "dynalite" / "cli.js"
#: Runs DYNALITE_CLI so that a request its client aborts does not end the server (see the file).
DYNALITE_LAUNCHER = Path(__file__).resolve().parent / "dynalite.js"
MINIMUM_NODE_MAJOR = 20

#: Credentials for the local servers; they never reach AWS, which would reject them.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local-fake-key",
    "AWS_SECRET_ACCESS_KEY": "local-fake-secret",
    "AWS_SESSION_TOKEN": "local-fake-token",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:*port*."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def wait_until_listening(port: int, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    """Block until *port* accepts connections.

    Raises
    ------
    RuntimeError
        On timeout, or when *process* exits first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server process exited with code {process.returncode} before listening on {port}")
        if port_in_use(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {HOST}:{port} after {timeout:.0f} s")


def node_version() -> tuple[int, ...] | None:
    """The version of ``node`` on PATH, or None when there is none."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        output = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return tuple(int(part) for part in output.strip().lstrip("v").split("."))
    except ValueError:
        return None


def dynalite_unavailable_reason() -> str | None:
    """Why dynalite cannot run here, or None when it can."""
    version = node_version()
    if version is None:
        return "Node.js is not installed"
    if version[0] < MINIMUM_NODE_MAJOR:
        return f"Node.js {'.'.join(map(str, version))} is older than {MINIMUM_NODE_MAJOR}"
    if not DYNALITE_CLI.exists():
        return f"{DYNALITE_CLI} is missing (run `npm ci`)"
    return None


def _die_with_parent() -> None:
    """In the child: ask Linux to end it when its parent dies (even by SIGKILL), so no server outlives a run."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class MotoServer:
    """moto in server mode on 127.0.0.1 (serves S3, and DynamoDB when asked)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> "MotoServer":
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} on {HOST} is already in use; cannot start moto there")
        # moto's per-request log would drown the output of whatever uses it.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        wait_until_listening(self.port)
        return self

    def stop(self) -> None:
        self._server.stop()


class DynaliteServer:
    """dynalite as a child process on 127.0.0.1.

    Parameters
    ----------
    port: where to listen (a free one when omitted).
    data_dir: LevelDB folder that keeps tables across restarts; in memory when None.

    Its stderr goes to a temporary file, not a pipe: nobody reads a pipe while it runs, and a
    full one would stall it; :meth:`death_report` reads the file when it has died.
    """

    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> "DynaliteServer":
        reason = dynalite_unavailable_reason()
        if reason:
            raise RuntimeError(f"dynalite cannot run: {reason}")
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} on {HOST} is already in use; cannot start dynalite there")
        command = [
            shutil.which("node") or "node", str(DYNALITE_LAUNCHER), "--host", HOST, "--port", str(self.port),
            "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0",
        ]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            command += ["--path", str(self.data_dir)]
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=self._stderr, preexec_fn=_die_with_parent
        )
        try:
            wait_until_listening(self.port, process=self.process)
        except RuntimeError as exc:
            report = self.death_report() or ""
            self.stop()
            raise RuntimeError(f"{exc}\n{report}".strip()) from None
        return self

    def death_report(self, tail_bytes: int = 4000) -> str | None:
        """None while it runs (or before it starts); once it has exited, its exit code and the end of its stderr."""
        if self.process is None or self.process.poll() is None or self._stderr is None:
            return None
        self._stderr.seek(0, 2)
        self._stderr.seek(max(0, self._stderr.tell() - tail_bytes))
        stderr = self._stderr.read().decode(errors="replace").strip()
        return f"dynalite exited with code {self.process.returncode}; its stderr ends: {stderr or '(nothing)'}"

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.process = None


def answers_like_dynamodb(url: str) -> bool:
    """Whether *url* answers a DynamoDB ListTables call."""
    try:
        client = boto3.client(
            "dynamodb", endpoint_url=url, region_name="us-east-1",
            aws_access_key_id="probe", aws_secret_access_key="probe",
        )
        client.list_tables(Limit=1)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not a DynamoDB here"
        return False


def answers_like_s3(url: str) -> bool:
    """Whether *url* answers like an S3 endpoint (moto's ListBuckets)."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
