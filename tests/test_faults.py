"""The fault proxy itself: each mode fails a real botocore call the way the network would.

Two layers. Raw sockets against a local echo server pin the byte-level contract
(which connection hangs, how many bytes pass, when the port is back). Real
clients against the emulators pin what our code will actually see: the botocore
exception of each fault and how long it takes to come.

moto answers ``Connection: close`` and dynalite keeps connections alive, so only
the dynalite runs reuse a pooled connection through a fault; the echo tests cover
that case for every run.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from tests.faults import FaultProxy

TIMEOUT_SECONDS = 1.0
# "At once" means sooner than any timeout could have fired, not a wall-clock figure: a loaded
# CI worker took over half a second for a refused connection once.
BEFORE_ANY_TIMEOUT = TIMEOUT_SECONDS * 0.9


def short_config(**retries: int) -> Config:
    """Timeouts of a second and, unless told otherwise, a single attempt.

    ``{"total_max_attempts": 1}`` rather than ``{"max_attempts": 1}``: botocore's
    ``max_attempts`` counts retries, so 1 means two attempts (see
    ``test_max_attempts_of_one_still_retries_once``).
    """
    return Config(
        connect_timeout=TIMEOUT_SECONDS,
        read_timeout=TIMEOUT_SECONDS,
        retries=dict(retries) or {"total_max_attempts": 1},
    )


def timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    """What *call* raised (None if nothing) and how long it took."""
    started = time.monotonic()
    try:
        call()
    except Exception as exc:  # the fault under test
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


# --- byte level, against an echo server ----------------------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_proxy() -> Iterator[FaultProxy]:
    """A FaultProxy in front of an echo server: one answer per send, on a kept-alive connection."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with FaultProxy(f"http://127.0.0.1:{server.server_address[1]}") as proxy:
            yield proxy
    finally:
        server.shutdown()
        server.server_close()


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_SECONDS)
    sock.settimeout(TIMEOUT_SECONDS)
    return sock


def echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_keep_alive_connection_is_forwarded_both_ways(echo_proxy):
    with connect(echo_proxy) as sock:
        assert echo(sock, b"ping") == b"ping"
        assert echo(sock, b"pong" * 50_000) == b"pong" * 50_000
    assert echo_proxy.connections == 1


def test_hang_stalls_an_open_connection_and_releases_it_on_the_next_mode(echo_proxy):
    with connect(echo_proxy) as pooled:
        assert echo(pooled, b"before") == b"before"
        echo_proxy.hang()
        pooled.sendall(b"during")
        with connect(echo_proxy) as new:
            new.sendall(b"during")
            new.settimeout(0.3)
            with pytest.raises(socket.timeout):
                new.recv(1)
            pooled.settimeout(0.3)
            with pytest.raises(socket.timeout):
                pooled.recv(1)
            echo_proxy.pass_through()
            assert closed_by_peer(pooled) and closed_by_peer(new)
    with connect(echo_proxy) as sock:
        assert echo(sock, b"after") == b"after"


def test_drop_after_forwards_that_many_bytes_then_closes(echo_proxy):
    echo_proxy.drop_after(3)
    with connect(echo_proxy) as sock:
        sock.sendall(b"abcdef")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        assert received == b"abc"


def test_refuse_closes_the_port_and_open_connections_then_reopens_the_same_port(echo_proxy):
    url = echo_proxy.url
    with connect(echo_proxy) as open_before:
        echo_proxy.refuse()
        assert closed_by_peer(open_before)
    with pytest.raises(ConnectionRefusedError):
        connect(echo_proxy)
    echo_proxy.pass_through()
    assert echo_proxy.url == url
    with connect(echo_proxy) as sock:
        assert echo(sock, b"back") == b"back"


def test_swallow_closes_the_next_requests_unanswered_then_passes_through(echo_proxy):
    with connect(echo_proxy) as kept_alive:
        assert echo(kept_alive, b"answered") == b"answered"
        echo_proxy.swallow(2)
        kept_alive.sendall(b"swallowed")
        assert closed_by_peer(kept_alive)
    with connect(echo_proxy) as sock:
        sock.sendall(b"swallowed too")
        assert closed_by_peer(sock)
    assert echo_proxy.swallowed == 2
    assert echo_proxy.mode == "pass_through"
    with connect(echo_proxy) as sock:
        assert echo(sock, b"answered") == b"answered"


def test_stop_releases_held_connections_without_waiting(echo_proxy):
    echo_proxy.hang()
    with connect(echo_proxy) as held:
        held.sendall(b"never answered")
        error, elapsed = timed(echo_proxy.stop)
        assert error is None and elapsed < 0.5
        assert closed_by_peer(held)
    with pytest.raises(ConnectionRefusedError):
        connect(echo_proxy)


# --- real clients, against the emulators ---------------------------------------------------------


@dataclass
class Target:
    """A proxy and one cheap read through it, with the client of a single short attempt."""

    proxy: FaultProxy
    call: Callable[[], object]


class FaultsSeenByBotocore:
    """Each fault as botocore reports it; run once per emulator by the subclasses."""

    def test_passes_through_by_default(self, target):
        target.call()
        target.call()
        assert target.proxy.connections >= 1

    def test_refuse_fails_at_once_with_endpoint_connection_error(self, target):
        target.call()
        target.proxy.refuse()
        error, elapsed = timed(target.call)
        assert isinstance(error, EndpointConnectionError)
        assert elapsed < BEFORE_ANY_TIMEOUT
        url = target.proxy.url
        target.proxy.pass_through()
        assert target.proxy.url == url
        target.call()

    def test_hang_fails_with_read_timeout_after_the_read_timeout(self, target):
        target.call()
        target.proxy.hang()
        error, elapsed = timed(target.call)
        assert isinstance(error, ReadTimeoutError)
        assert TIMEOUT_SECONDS * 0.9 <= elapsed < TIMEOUT_SECONDS * 2
        target.proxy.pass_through()
        target.call()

    def test_drop_after_fails_with_connection_closed_error(self, target):
        target.proxy.drop_after(10)
        error, elapsed = timed(target.call)
        assert isinstance(error, ConnectionClosedError)
        assert elapsed < BEFORE_ANY_TIMEOUT
        target.proxy.pass_through()
        target.call()

    def test_swallow_fails_one_call_and_the_next_succeeds(self, target):
        target.call()
        target.proxy.swallow(1)
        error, _ = timed(target.call)
        assert isinstance(error, ConnectionClosedError)
        assert target.proxy.swallowed == 1
        target.call()


class TestS3(FaultsSeenByBotocore):
    @pytest.fixture
    def target(self, s3_proxy) -> Iterator[Target]:
        client = boto3.client("s3", endpoint_url=s3_proxy.url, config=short_config())
        yield Target(s3_proxy, client.list_buckets)
        client.close()


class TestDynamoDB(FaultsSeenByBotocore):
    @pytest.fixture
    def target(self, dynamodb_proxy) -> Iterator[Target]:
        client = boto3.client("dynamodb", endpoint_url=dynamodb_proxy.url, config=short_config())
        yield Target(dynamodb_proxy, client.list_tables)
        client.close()


def test_max_attempts_of_one_still_retries_once(s3_proxy):
    client = boto3.client("s3", endpoint_url=s3_proxy.url, config=short_config(max_attempts=1))
    s3_proxy.swallow(1)
    client.list_buckets()
    client.close()
    assert s3_proxy.swallowed == 1


def test_faulty_settings_reach_the_provisioned_resources_through_the_proxies(faulty_settings, s3_proxy, dynamodb_proxy):
    assert faulty_settings.s3_endpoint_url == s3_proxy.url
    assert faulty_settings.dynamodb_endpoint_url == dynamodb_proxy.url
    s3 = boto3.client("s3", endpoint_url=faulty_settings.s3_endpoint_url, config=short_config())
    dynamodb = boto3.client("dynamodb", endpoint_url=faulty_settings.dynamodb_endpoint_url, config=short_config())
    s3.head_bucket(Bucket=faulty_settings.model_bucket)
    dynamodb.describe_table(TableName=faulty_settings.events_table)
    s3.close()
    dynamodb.close()
    assert s3_proxy.connections >= 1 and dynamodb_proxy.connections >= 1
