"""`make demo`: local AWS stack, a trained model, and the API on http://127.0.0.1:8000.

Runs in the foreground; Ctrl-C stops everything it started. A second run
stops what a previous run left behind (recorded in ``.demo/run.json``) and
reuses the DynamoDB data kept in ``.demo/dynamodb``.

The bundled MovieLens sample enters DynamoDB through the same write path as
``POST /events`` (first run only), its movies fill the catalog, and the model
is trained from the event log, as in production. A slice of the sample is then
replayed as shop events of the last 28 days, with a burst in one category today
(:mod:`local_aws.replay`), through the same write path, which keeps the insight
counters: the insight and trending routes have something to show.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode, urlparse

from tqdm import tqdm

from chalicelib.access.control import Access
from chalicelib.catalog.formats import import_file as import_catalog_file
from chalicelib.config import PROJECT_DIR, settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.eventlog.formats import count_lines
from chalicelib.eventlog.importer import import_file
from chalicelib.resources import Resources
from chalicelib.training.als import AlsParameters
from chalicelib.training.segments import DEFAULT_SEGMENTS, add_segments
from chalicelib.training.sources.movielens import SAMPLE_RATINGS
from chalicelib.training.train import train_from_event_log
from local_aws.replay import BURST_CATEGORY, REPLAY_RATINGS, burst_events, replay_events
from local_aws.stack import (
    FAKE_CREDENTIALS,
    HOST,
    DynaliteServer,
    MotoServer,
    dynalite_unavailable_reason,
    port_in_use,
    wait_until_listening,
)

STAGE = "local"
API_PORT = 8000
#: The local stage's keys: .chalice/config.json holds only their hashes. Never use them elsewhere.
DEMO_PUBLISHABLE_KEY = "pk_demo_local_only_3mV8qT2xN7rB5wK9cY4hZp"
DEMO_SECRET_KEY = "sk_demo_local_only_Z6pL1sD8fG3jH5kQ9wE2vR"
#: The user of README's examples, and how long the printed token lasts.
DEMO_USER = "196"
DEMO_TOKEN_SECONDS = 86400
DEMO_DIR = PROJECT_DIR / ".demo"
RUN_FILE = DEMO_DIR / "run.json"
IMPORT_MARKER = DEMO_DIR / "dynamodb" / "sample-imported.txt"
CATALOG_MARKER = DEMO_DIR / "dynamodb" / "catalog-imported.txt"
REPLAY_MARKER = DEMO_DIR / "dynamodb" / "recent-activity-replayed.txt"
BURST_MARKER = DEMO_DIR / "dynamodb" / "burst-written.txt"
#: Events per EventLog.write of the replay: time-ordered chunks share their counter items.
REPLAY_CHUNK = 500
#: The movies of the sample's ratings (u.genre beside it names the genre flags).
SAMPLE_CATALOG = SAMPLE_RATINGS.with_name("u.item")


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _port_of(url: str | None) -> int:
    port = urlparse(url or "").port
    if port is None:
        raise SystemExit(f"the {STAGE} stage must give endpoint URLs with explicit ports, got {url!r}")
    return port


def _process_command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_previous_run() -> None:
    """Stop the processes a previous demo recorded, if they still run."""
    try:
        previous = json.loads(RUN_FILE.read_text())
    except (OSError, ValueError):
        return
    for entry in previous.get("processes", []):
        pid, marker = int(entry["pid"]), entry["marker"]
        # Only signal a pid that still runs the program we recorded (pids get reused).
        if pid == os.getpid() or not _alive(pid) or marker not in _process_command_line(pid):
            continue
        say(f"stopping {entry['name']} left by a previous run (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    RUN_FILE.unlink(missing_ok=True)


def record_run(processes: list[dict]) -> None:
    DEMO_DIR.mkdir(exist_ok=True)
    RUN_FILE.write_text(json.dumps({"processes": processes}, indent=2))


def load_sample_events(resources: Resources, marker: Path | None = IMPORT_MARKER, sample: Path = SAMPLE_RATINGS) -> None:
    """Import the bundled MovieLens sample into the event log, once per DynamoDB data folder.

    The import is idempotent anyway; the marker (None for an in-memory
    DynamoDB) only saves its half minute on later starts.
    """
    settings = resources.settings
    fingerprint = f"{settings.events_table}:{hashlib.sha256(sample.read_bytes()).hexdigest()}"
    if marker is not None and marker.exists() and marker.read_text() == fingerprint:
        say("sample events already imported")
        return
    say(f"importing {sample.name} into DynamoDB through the event write path (first run only) ...")
    started = time.perf_counter()
    with tqdm(total=count_lines(sample), unit="event", leave=False) as bar:
        summary = import_file(
            sample, "movielens-100k", resources.event_log, frozenset(settings.event_weight_map),
            progress=bar.update,
        )
    if summary.rejected or summary.not_stored:
        raise SystemExit(f"sample import incomplete: {summary}")
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(fingerprint)
    say(f"stored {summary.stored} events ({summary.duplicates} already there) in {time.perf_counter() - started:.0f} s")


def load_sample_catalog(resources: Resources, marker: Path | None = CATALOG_MARKER,
                        sample: Path = SAMPLE_CATALOG) -> None:
    """Upsert the bundled MovieLens movies into the catalog, once per DynamoDB data folder.

    Upserts are idempotent anyway; the marker (None for an in-memory DynamoDB)
    only saves a second or two on later starts.
    """
    fingerprint = f"{resources.settings.catalog_table_name}:{hashlib.sha256(sample.read_bytes()).hexdigest()}"
    if marker is not None and marker.exists() and marker.read_text() == fingerprint:
        say("sample catalog already imported")
        return
    started = time.perf_counter()
    summary = import_catalog_file(sample, "movielens-100k", resources.catalog)
    if summary.rejected:
        raise SystemExit(f"sample catalog import incomplete: {summary}")
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(fingerprint)
    say(f"stored {summary.stored} catalog items from {sample.name} in {time.perf_counter() - started:.1f} s")


def _write_events(resources: Resources, events: list) -> int:
    """Store *events* through the event log (and so the counters) in chunks; the number newly stored."""
    # One write at a time: dynalite answers one call at a time, and writes side by side would only race
    # for the same counter items' sketches.
    receipts = [resources.event_log.write(events[start:start + REPLAY_CHUNK])
                for start in range(0, len(events), REPLAY_CHUNK)]
    failed = sum(len(receipt.failed) for receipt in receipts)
    if failed:
        raise SystemExit(f"{failed} replayed events could not be stored; run the demo again")
    return sum(len(receipt.stored) for receipt in receipts)


def replay_recent_activity(resources: Resources, replay_marker: Path | None = REPLAY_MARKER,
                           burst_marker: Path | None = BURST_MARKER, sample: Path = SAMPLE_RATINGS,
                           now: datetime | None = None, ratings: int = REPLAY_RATINGS) -> int:
    """Write the sample's slice replayed over the last 28 days (once per data folder) and today's burst.

    Both go through ``EventLog.write``, whose listener keeps the insight counters. Their event ids do
    not depend on *now* (the burst's on its UTC day), so writing them again stores nothing; the
    markers (None for an in-memory DynamoDB) only save the look-up. *ratings*: how many of the sample's
    ratings are replayed. Returns the events newly stored.
    """
    now = now or datetime.now(timezone.utc)
    fingerprint = f"{resources.settings.events_table}:{hashlib.sha256(sample.read_bytes()).hexdigest()}"
    stored = 0
    if replay_marker is not None and replay_marker.exists() and replay_marker.read_text() == fingerprint:
        say("recent activity already replayed")
    else:
        started = time.perf_counter()
        events = replay_events(sample, now, ratings)
        stored += _write_events(resources, events)
        if replay_marker is not None:
            replay_marker.parent.mkdir(parents=True, exist_ok=True)
            replay_marker.write_text(fingerprint)
        say(f"replayed {len(events)} events of the sample over the last 28 days as views, clicks, add-to-carts "
            f"and purchases ({stored} new) in {time.perf_counter() - started:.1f} s")
    today = f"{fingerprint}:{now.astimezone(timezone.utc):%Y-%m-%d}"
    if burst_marker is not None and burst_marker.exists() and burst_marker.read_text() == today:
        say(f"today's burst in {BURST_CATEGORY} already written")
        return stored
    started = time.perf_counter()
    burst = burst_events(sample, now)
    new = _write_events(resources, burst)
    if burst_marker is not None:
        burst_marker.parent.mkdir(parents=True, exist_ok=True)
        burst_marker.write_text(today)
    say(f"wrote today's burst of {len(burst)} events on {BURST_CATEGORY} movies ({new} new) "
        f"in {time.perf_counter() - started:.1f} s")
    return stored + new


def ensure_model(resources: Resources, params: AlsParameters | None = None) -> str:
    """Make sure a model is live in the demo bucket, training one from the event log if not.

    Returns the live version id.
    """
    registry = resources.model_registry
    live = registry.live_version()
    if live is not None:
        say(f"model {live} is already live")
        return live
    say("training ALS on the event log in DynamoDB ...")
    started = time.perf_counter()
    params = params or AlsParameters()
    artifact = train_from_event_log(resources.scan_table, resources.settings.event_weight_map, params)
    artifact = add_segments(artifact, DEFAULT_SEGMENTS, params.random_state)  # as a retrain makes them
    version = registry.publish(artifact)
    say(f"trained on {artifact.n_interactions} interactions and published model {version} "
        f"in {time.perf_counter() - started:.1f} s")
    return version


def print_keys(resources: Resources) -> None:
    """Show the demo's keys and a user token, the way README's examples use them."""
    access = resources.access
    for key in (DEMO_PUBLISHABLE_KEY, DEMO_SECRET_KEY):
        try:
            access.authorize(Access.ANY_KEY, key, None, None)
        except RecommenderError:
            say(f"warning: {key[:8]}... is not a key of the {STAGE} stage in .chalice/config.json; "
                "README's examples will be refused")
    token = resources.user_tokens.sign(DEMO_USER, DEMO_TOKEN_SECONDS)
    origins = ", ".join(sorted(resources.access.allowed_origins))
    say("keys of the local stage (for this machine only):")
    print(f"    publishable key  {DEMO_PUBLISHABLE_KEY}  (pages on {origins})", flush=True)
    print(f"    secret key       {DEMO_SECRET_KEY}", flush=True)
    print(f"    user token of user {DEMO_USER} (24 h)  {token}", flush=True)
    say("in a shell, as README's examples expect:")
    print(f"    export PK={DEMO_PUBLISHABLE_KEY} SK={DEMO_SECRET_KEY} TOKEN={token}", flush=True)
    # The fragment stays in the browser: the key and the token reach no server log.
    fragment = urlencode({"key": DEMO_PUBLISHABLE_KEY, "user": DEMO_USER, "token": token})
    say(f"the website widget on the catalog, as user {DEMO_USER} (README, Website widget):")
    print(f"    http://{HOST}:{API_PORT}/demo#{fragment}", flush=True)


def main() -> int:
    settings = settings_for_stage(STAGE)
    s3_port, dynamodb_port = _port_of(settings.s3_endpoint_url), _port_of(settings.dynamodb_endpoint_url)
    stop_previous_run()
    for port, what in ((API_PORT, "the API"), (s3_port, "S3"), (dynamodb_port, "DynamoDB")):
        if port_in_use(port):
            say(f"port {port} on {HOST}, needed for {what}, is used by another program; stop it and run again")
            return 1

    started: list = []
    chalice: subprocess.Popen | None = None

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        moto = MotoServer(s3_port).start()
        started.append(moto)
        say(f"S3 (moto) on {moto.url}")
        reason = dynalite_unavailable_reason()
        marker = IMPORT_MARKER if reason is None else None
        if reason is None:
            dynalite = DynaliteServer(dynamodb_port, DEMO_DIR / "dynamodb").start()
            started.append(dynalite)
            say(f"DynamoDB (dynalite, data in .demo/dynamodb) on {dynalite.url}")
        else:
            moto_dynamodb = MotoServer(dynamodb_port).start()
            started.append(moto_dynamodb)
            say(f"warning: {reason}; DynamoDB is served by moto on {moto_dynamodb.url}, "
                "in memory and with queries that slow down as the table grows")
        resources = Resources(settings)
        resources.provision()
        load_sample_events(resources, marker)
        load_sample_catalog(resources, CATALOG_MARKER if marker is not None else None)
        ensure_model(resources)
        # After the catalog (the counters file each movie under its genres) and the model (trained as before).
        replay_recent_activity(resources, REPLAY_MARKER if marker is not None else None,
                               BURST_MARKER if marker is not None else None)

        env = {**os.environ, **FAKE_CREDENTIALS}
        env.pop("AWS_PROFILE", None)
        command = [
            str(Path(sys.executable).parent / "chalice"), "local", "--host", HOST, "--port", str(API_PORT),
            "--stage", STAGE, "--no-autoreload",
        ]
        chalice = subprocess.Popen(command, cwd=PROJECT_DIR, env=env)
        processes = [{"name": "demo runner", "pid": os.getpid(), "marker": "local_aws.demo"},
                     {"name": "chalice local", "pid": chalice.pid, "marker": "chalice"}]
        processes += [{"name": "dynalite", "pid": s.process.pid, "marker": "dynalite"}
                      for s in started if isinstance(s, DynaliteServer)]
        record_run(processes)
        wait_until_listening(API_PORT, timeout=60, process=chalice)
        say(f"API on http://{HOST}:{API_PORT}  (Ctrl-C stops everything)")
        print_keys(resources)
        say(f"try: curl -H \"x-api-key: $PK\" -H \"x-user-token: $TOKEN\" "
            f"'http://{HOST}:{API_PORT}/users/{DEMO_USER}/recommendations?n=5'")
        return chalice.wait()
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        if chalice is not None and chalice.poll() is None:
            chalice.terminate()
            try:
                chalice.wait(timeout=10)
            except subprocess.TimeoutExpired:
                chalice.kill()
        for server in reversed(started):
            server.stop()
        RUN_FILE.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
