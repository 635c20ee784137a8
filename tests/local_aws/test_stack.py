"""local_aws/stack.py: the emulators the demo and the tests run."""

from __future__ import annotations

import socket
import struct
import time

from local_aws.stack import DynaliteServer, answers_like_dynamodb, dynalite_unavailable_reason
from tests.support import skip_unless_ci


def test_a_dynalite_that_dies_says_how_and_a_running_one_says_nothing():
    # The suite checks its dynalite after every test: a dead one fails the first test to see it with this.
    skip_unless_ci("dynalite", dynalite_unavailable_reason())
    server = DynaliteServer().start()
    try:
        assert answers_like_dynamodb(server.url)
        assert server.death_report() is None
        server.process.kill()
        server.process.wait(timeout=10)
        report = server.death_report()
    finally:
        server.stop()
    assert report is not None and report.startswith("dynalite exited with code -9")
    assert server.death_report() is None  # stopped: nothing left to report


def test_a_request_its_client_aborts_leaves_dynalite_serving():
    # dynalite 4.0 alone rethrows the request's error and exits (architect/dynalite#183): a fault
    # test's reset connection then failed every later test of its worker.
    skip_unless_ci("dynalite", dynalite_unavailable_reason())
    server = DynaliteServer().start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as client:
            client.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"
                           b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: 100\r\n\r\n{")
            time.sleep(0.3)  # dynalite is reading the body
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        time.sleep(0.5)
        assert server.death_report() is None
        assert answers_like_dynamodb(server.url)
    finally:
        server.stop()
