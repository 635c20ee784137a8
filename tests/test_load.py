"""A bounded load run over real HTTP, with a fault injected mid-run, on both DynamoDB emulators.

`chalice local` (a threaded server) serves the app; 8 client threads mix
recommendation reads, session requests and event writes that reuse event ids,
and in the middle of the run DynamoDB stops answering for a while. What must
hold: no 5xx but the budgeted 503s (each with ``Retry-After``), and once the
clients have resent what the receipts listed as not stored, the table holds
exactly the events that were sent, each once. Figures are printed (``-s``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import requests

from chalicelib.resources import Resources
from local_aws.stack import free_port, wait_until_listening
from tests.conftest import CPU_HEAVY_GROUP
from tests.support import SECRET_KEY, write_stage_config

pytestmark = CPU_HEAVY_GROUP

PROJECT_DIR = Path(__file__).resolve().parents[1]
CLIENTS = 8
RUN_SECONDS = 6.0
FAULT_FROM, FAULT_FOR = 2.0, 2.0
DEADLINE = 3.5
#: How long after the run a client may keep resending refused events: past it, the emulator is taken
#: to be down and the test fails instead of looping.
DRAIN_SECONDS = 30.0


@pytest.fixture
def server(faulty_settings, moto_server, dynamodb_endpoint, tmp_path, make_tiny_artifact):
    """`chalice local` for *faulty_settings*, from a project folder that links to this one's code."""
    settings = replace(faulty_settings, request_deadline_seconds=DEADLINE, model_refresh_seconds=1.0,
                       aws_connect_timeout_seconds=0.5, aws_read_timeout_seconds=1.5)  # production's
    direct = Resources(replace(settings, s3_endpoint_url=moto_server.url, dynamodb_endpoint_url=dynamodb_endpoint))
    direct.model_registry.publish(make_tiny_artifact())
    for name in ("app.py", "chalicelib"):
        (tmp_path / name).symlink_to(PROJECT_DIR / name)
    write_stage_config(tmp_path, "load", settings)
    port = free_port()
    # Kept for the test's failure message: a 500 from chalice local means an exception escaped a view.
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("chalice")), "local", "--no-autoreload", "--stage", "load", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(port, timeout=60, process=process)
        yield f"http://127.0.0.1:{port}", direct, tmp_path / "server.log"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_under_load_with_dynamodb_failing_mid_run_nothing_is_lost_or_doubled(server, dynamodb_proxy):
    base, direct, server_log = server
    sent: set[tuple[str, str]] = set()
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    spans: list[tuple[float, float]] = []  # (start since the run began, seconds) of each request
    wrong: list[str] = []
    started = time.monotonic()

    def client(number: int) -> None:
        rng = random.Random(number)
        session = requests.Session()
        session.headers.update({"x-api-key": SECRET_KEY, "Content-Type": "application/json"})
        pending: list[dict] = []  # events a receipt said were not stored: resent, as a client would
        n = 0
        while time.monotonic() - started < RUN_SECONDS or pending:
            if time.monotonic() - started > RUN_SECONDS + DRAIN_SECONDS:
                with lock:
                    wrong.append(f"client {number}: {len(pending)} events still refused {DRAIN_SECONDS:.0f} s "
                                 "after the run")
                break
            kind = rng.random()
            if pending or kind < 0.4:
                user = f"u{rng.randrange(3)}"
                if pending:
                    events, pending = pending, []
                else:
                    # Every third event reuses an id already sent: a duplicate, stored once.
                    events = [{"user_id": user, "item_id": f"i{rng.randrange(4)}", "event_type": "click",
                               "event_id": f"c{number}-{n - n % 3 if k == 0 else n}-{k}"} for k in range(3)]
                    n += 1
                method, path, body = "POST", "/events", {"events": events}
            elif kind < 0.6:
                method, path, body = "GET", f"/users/u{rng.randrange(3)}/recommendations?n=3", None
            elif kind < 0.8:
                method, path, body = "POST", "/recommendations", {"item_ids": ["i0", "i2"], "n": 2}
            else:
                method, path, body = "GET", f"/items/i{rng.randrange(4)}/similar?n=2", None
            t0 = time.monotonic()
            response = session.request(method, base + path, data=json.dumps(body) if body else None, timeout=30)
            elapsed = time.monotonic() - t0
            answer = response.json()
            with lock:
                statuses[response.status_code] += 1
                latencies.append(elapsed)
                spans.append((t0 - started, elapsed))
                if path == "/events":
                    sent.update((e["user_id"], e["event_id"]) for e in body["events"])
                if response.status_code >= 500 and (response.status_code != 503 or "Retry-After" not in response.headers):
                    wrong.append(f"{method} {path}: {response.status_code} {answer}")
                if elapsed > DEADLINE + 2.5:
                    wrong.append(f"{method} {path} took {elapsed:.1f} s")
            if path == "/events" and response.status_code == 503:
                listed = answer.get("not_stored")
                pending = ([body["events"][entry["index"]] for entry in listed] if listed is not None
                           else body["events"])
                time.sleep(float(response.headers["Retry-After"]) / 4)
            elif path == "/events" and response.status_code != 202:
                wrong.append(f"POST /events: {response.status_code} {answer}")

    def fault() -> None:
        time.sleep(FAULT_FROM)
        dynamodb_proxy.hang()
        time.sleep(FAULT_FOR)
        dynamodb_proxy.pass_through()

    threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
    threads.append(threading.Thread(target=fault))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duration = time.monotonic() - started

    stored = {(r.user_id, r.event_id) for user in ("u0", "u1", "u2")
              for r in direct.event_table.query(user, consistent_read=True) if not r.is_erasure_marker}
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    print(f"\n{len(latencies)} requests in {duration:.1f} s ({len(latencies) / duration:.0f}/s) by {CLIENTS} clients; "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, slowest {max(latencies) * 1000:.0f} ms; statuses {dict(statuses)}; "
          f"events sent {len(sent)} (unique), stored {len(stored)}")
    assert wrong == [], _tracebacks(server_log)
    # The fault hit requests under way (reads answer from the model alone; writes may get a 503)...
    assert any(start < FAULT_FROM + FAULT_FOR and start + took > FAULT_FROM for start, took in spans)
    assert stored == sent  # ...and yet every event sent is stored, once


def _tracebacks(log: Path) -> str:
    """The server's tracebacks (what escaped a view), for a failure message."""
    lines = log.read_text(errors="replace").splitlines()
    starts = [number for number, line in enumerate(lines) if line.startswith("Traceback")]
    return "\n".join("\n".join(lines[start:start + 40]) for start in starts[:3]) or "no traceback in the server's log"
