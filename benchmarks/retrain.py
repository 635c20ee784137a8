"""P4 of the benchmark suite: a whole retrain against implicit's ``fit`` alone on the same matrix.

Run from the project root::

    .venv/bin/python -m benchmarks.retrain              # 100k and 1M events from an export, 10M in memory
    .venv/bin/python -m benchmarks.retrain --quick      # 100 000 events only (about 20 s)
    .venv/bin/python -m benchmarks.retrain --size 10M   # chosen sizes only, each from an export

It prints the figures of :func:`run` as JSON (progress goes to stderr). The
suite's harness (``python -m benchmarks``) imports this module and calls
:func:`run` instead.

10 000 000 events are read from memory in the full mode, and their fit alone
is not measured: on the suite's 2-core machine writing their export took 1
minute and reading it 7 (about 24 000 items/s, JSON decoding in one Python
thread), and the baseline fit 2.3, which with the rest of the suite would
break its 15 minutes. So at 10M the figures are the retrain without its read
(the events handed over in memory, as ``scripts/benchmark_retrain.py
--synthetic`` does) and its peak memory, which then holds the events but not
a read's buffers; ``--size 10M`` measures it from an export, fit included.

What is measured, for each size (events in the log):

* **the retrain**: ``chalicelib.training.retrain.retrain`` end to end, as
  ``scripts/retrain.py --from-export`` runs it: read a full DynamoDB JSON
  export from S3 (``read_export``), build the interaction table and the
  time split, the "search" (see below), evaluate candidate and popularity on
  the held-out part, the quality gate, the final fit on every interaction,
  publish the version to S3 (serialise, verify, upload, move ``latest.json``).
  Its wall time minus its ``read`` phase is the figure; the read is reported
  on its own, and so is every phase of ``result.timings``.
* **the fit alone**: ``implicit.cpu.als.AlternatingLeastSquares(...).fit``,
  called the way ``chalicelib.training.als.fit_als`` calls it (same factors,
  regularization, alpha, iterations, ``random_state``, ``num_threads`` left at
  implicit's default of 0 so both follow OpenMP's thread count, a float32
  matrix), on the very user × item matrix the retrain's final fit trained on
  (rebuilt from the published artifact's seen items), right after the retrain
  in the same process.

**P4** is, at 1 000 000 events, (retrain wall time - read) ÷ fit alone.

"Search off": a budget of 0, the hyperparameters below given as the start.
The retrain then fits twice: the evaluation's candidate (on the training
part, 80 %, ranked on test) and the published model on everything, which
starts from the candidate's factors and runs a third of the iterations
(``RetrainOptions.warm_refit``). A fresh bucket per size means no live model,
so no live refit happens. The gate is forced so that every size publishes,
whatever the synthetic scores.

Hyperparameters: ``AlsParameters()``'s defaults, the ones the retrain
starts from: 64 factors, regularization 48, alpha 6, 15 iterations,
``random_state`` 42. Threads: BLAS on one thread (the suite's setting) and
OpenMP, hence implicit, on one thread too (``OMP_NUM_THREADS=1``, which the
harness sets), for both the retrain and the baseline.

Data: ``scripts/benchmark_retrain.py``'s ``synthetic_events`` (lognormal user
activity, power-law item popularity inside 20 taste groups, 30 % uniform
noise; 70 % views, 20 % clicks, 10 % purchases over 180 days) with its default
population: N / 50 users and max(N / 250, 2000) items. Repeated (user, item)
events add up, so the matrix holds fewer interactions than events
(``retrain_sizes`` gives both).

Setup, not timed: moto (S3) and dynalite are started in this process; the
events are written to moto as a DynamoDB export laid out as AWS lays one out
(``manifest-summary.json``, ``manifest-files.json``, ``data/*.json.gz`` of
``{"Item": ...}`` lines in the event table's DynamoDB JSON, checked against
``EventRecord.serialize()``). Each size then runs in its own child process
(``python -m benchmarks.retrain --child ...``) that reads that export over
HTTP, so its peak RSS (``VmHWM``, taken when the retrain returns, before the
baseline; see :func:`peak_rss_mb` for why not ``ru_maxrss``) is the
retrain's alone, moto's memory staying in this process. The child sets BLAS
and OpenMP to one thread itself, whoever starts it.
"""

from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
if __name__ == "__main__":
    for _variable in BLAS_THREAD_VARIABLES:
        os.environ[_variable] = "1"  # before numpy is imported; the harness does this itself

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.answers import settings_for  # noqa: E402
from benchmarks.common import local_stack, standalone  # noqa: E402
from chalicelib.training.als import AlsParameters  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parents[1]
#: Events in the log, by size label.
SIZES = {"100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}
#: What each mode measures; 10M in memory (see the module docstring).
FULL_SIZES = ("100k", "1M", "10M")
IN_MEMORY_IN_FULL_MODE = ("10M",)
QUICK_SIZES = ("100k",)
#: The one configuration every fit uses (the retrain's defaults).
PARAMETERS = AlsParameters()
SEED = 1
#: Where the export goes in the bucket, and how many items each of its data files holds.
EXPORT_PREFIX = "exports/events"
EXPORT_ID = "01700000000000-bench0p4"
FILE_ITEMS = 250_000
#: After every event's receive time: the table as it stood then.
EXPORT_TIME = "2026-07-02T00:00:00.000Z"
#: How long after its timestamp the log stored each event.
RECEIVE_DELAY_SECONDS = 2
RECEIVE_DELAY = np.timedelta64(RECEIVE_DELAY_SECONDS, "s")
RESULT_MARK = "@@RESULT@@"


def say(message: str, started: float) -> None:
    """Progress, on stderr (stdout is the JSON answer when run alone)."""
    print(f"[retrain {time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def population(n_events: int) -> tuple[int, int]:
    """(users, items) for *n_events*: ``scripts/benchmark_retrain.py``'s defaults."""
    return max(n_events // 50, 100), max(n_events // 250, 2000)


# --- the export (setup) ----------------------------------------------------------------------------


def export_lines(events: Any, start: int, stop: int) -> list[str]:
    """Events *start*..*stop* as export lines, exactly ``json.dumps({"Item": record.serialize()})``.

    Formatted directly rather than through pynamodb, which would take minutes at 10M events;
    :func:`check_export_lines` holds the two to the same text.
    """
    users = events.user_ids[events.users[start:stop]].tolist()
    items = events.item_ids[events.items[start:stop]].tolist()
    kinds = events.event_types[events.types[start:stop]].tolist()
    times = np.datetime_as_string(events.times[start:stop], unit="ms").tolist()
    received = np.datetime_as_string(events.times[start:stop] + RECEIVE_DELAY, unit="ms").tolist()
    return [
        f'{{"Item": {{"event_id": {{"S": "b{n}"}}, "event_type": {{"S": "{kind}"}}, "item_id": {{"S": "{item}"}}, '
        f'"received_at": {{"S": "{got}000+0000"}}, "record_key": {{"S": "e#b{n}"}}, '
        f'"time_key": {{"S": "{at}Z#b{n}"}}, "timestamp": {{"S": "{at}000+0000"}}, "user_id": {{"S": "{user}"}}}}}}\n'
        for n, user, item, kind, at, got in zip(range(start, stop), users, items, kinds, times, received)
    ]


def check_export_lines(events: Any, positions: list[int]) -> None:
    """Fails unless :func:`export_lines` writes what the API stores (``EventRecord.serialize()``) for *positions*."""
    from chalicelib.eventlog.item import Event, EventRecord

    for position in positions:
        moment = events.times[position].astype("datetime64[ms]").astype(datetime).replace(tzinfo=timezone.utc)
        event = Event(user_id=str(events.user_ids[events.users[position]]),
                      item_id=str(events.item_ids[events.items[position]]),
                      event_type=str(events.event_types[events.types[position]]), event_id=f"b{position}",
                      timestamp=moment)
        record = EventRecord.of_event(event, received_at=moment + timedelta(seconds=RECEIVE_DELAY_SECONDS))
        expected = json.dumps({"Item": record.serialize()}) + "\n"
        written = export_lines(events, position, position + 1)[0]
        if written != expected:
            raise RuntimeError(f"the export writer drifted from EventRecord:\n{written}{expected}")


def write_export(s3: Any, bucket: str, events: Any) -> dict[str, float]:
    """*events* as a full DynamoDB JSON export under ``EXPORT_PREFIX/AWSDynamoDB/EXPORT_ID``; its size.

    Data files of :data:`FILE_ITEMS` items, gzip level 1 (the reader does not care, and the
    default level would lengthen the setup); manifests last, as DynamoDB writes them.
    """
    folder = f"{EXPORT_PREFIX}/AWSDynamoDB/{EXPORT_ID}"
    manifest_lines, compressed = [], 0
    for number, start in enumerate(range(0, len(events), FILE_ITEMS)):
        stop = min(start + FILE_ITEMS, len(events))
        body = gzip.compress("".join(export_lines(events, start, stop)).encode(), compresslevel=1)
        key = f"{folder}/data/{number:05d}-bench.json.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        compressed += len(body)
        manifest_lines.append(json.dumps({"itemCount": stop - start, "md5Checksum": "-", "etag": "-",
                                          "dataFileS3Key": key}))
    s3.put_object(Bucket=bucket, Key=f"{folder}/manifest-summary.json", Body=json.dumps({
        "version": "2023-08-01", "exportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/events/export/{EXPORT_ID}",
        "startTime": EXPORT_TIME, "endTime": EXPORT_TIME, "exportTime": EXPORT_TIME, "s3Bucket": bucket,
        "s3Prefix": EXPORT_PREFIX, "manifestFilesS3Key": f"{folder}/manifest-files.json", "itemCount": len(events),
        "outputFormat": "DYNAMODB_JSON", "exportType": "FULL_EXPORT",
    }).encode())
    s3.put_object(Bucket=bucket, Key=f"{folder}/manifest-files.json", Body=("\n".join(manifest_lines) + "\n").encode())
    return {"export_files": len(manifest_lines), "export_mb": round(compressed / 2**20, 1)}


# --- one size, in its own process --------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB: Linux's ``VmHWM``, else ``ru_maxrss``.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` would do on its own but for one catch: Linux carries it
    over fork and exec, so a child started by a parent holding 400 MB reports at least 400 MB
    (checked: a child of a 300 MB parent said 311 MB, its ``VmHWM`` 11 MB). ``VmHWM`` belongs
    to the address space the exec created, so it is this process's own peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def openmp_threads() -> int | None:
    """The thread count OpenMP (hence implicit, at ``num_threads=0``) uses here; None if not loaded."""
    from threadpoolctl import threadpool_info

    counts = [entry["num_threads"] for entry in threadpool_info() if entry.get("user_api") == "openmp"]
    return max(counts) if counts else None


def trained_matrix(artifact: Any) -> Any:
    """The user × item matrix the retrain's final fit trained on, from the artifact's seen items.

    ``als_artifact`` stores that matrix's ``indptr``, ``indices`` and ``data`` as they were (the
    index arrays widened); they are narrowed back to scipy's int32 here, as the retrain had them.
    """
    from scipy.sparse import csr_matrix

    return csr_matrix((artifact.seen_values.astype(np.float32), artifact.seen_indices.astype(np.int32),
                       artifact.seen_indptr.astype(np.int32)), shape=(artifact.n_users, artifact.n_items))


def fit_alone(matrix: Any, params: AlsParameters) -> float:
    """Seconds of implicit's ``fit`` on *matrix*, constructed as ``fit_als`` constructs it.

    Repeated (up to 3 times) only while the fits take under 5 s in all, the median kept: a
    100k fit is short enough for one scheduler hiccup to show.
    """
    from implicit.cpu.als import AlternatingLeastSquares

    seconds: list[float] = []
    while len(seconds) < 3 and (not seconds or sum(seconds) < 5.0):
        model = AlternatingLeastSquares(factors=params.factors, regularization=params.regularization,
                                        alpha=params.alpha, iterations=params.iterations,
                                        random_state=params.random_state)
        began = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds.append(time.perf_counter() - began)
    return float(np.median(seconds))


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """One size, in this (fresh) process: the retrain from the export, then implicit's fit alone.

    *spec* names the servers, the bucket the export is in (the model is published there too,
    under ``models/``) and the export's S3 URI.
    """
    from chalicelib.config import DEFAULT_EVENT_WEIGHTS
    from chalicelib.resources import Resources
    from chalicelib.training.retrain import Progress, RetrainOptions, retrain
    from chalicelib.training.sources.export import read_export

    # Progress on the parent's clock, so that the two processes' lines read as one log.
    started = time.perf_counter() - (time.time() - spec["parent_started_at"])
    label = spec["label"]

    class PhasePrinter(Progress):
        def done(self, name: str, seconds: float) -> None:
            say(f"{label}: {name} {seconds:.2f} s, peak RSS so far {peak_rss_mb():,.0f} MB", started)

    settings = replace(settings_for(spec["s3_url"], spec["dynamodb_url"]), model_bucket=spec["bucket"])
    resources = Resources(settings)
    s3, registry = resources.s3, resources.model_registry
    options = RetrainOptions(budget=0, start=PARAMETERS, force=True, keep_versions=2)
    if spec["in_memory"]:
        from chalicelib.training.event_arrays import EventLogSnapshot
        from scripts.benchmark_retrain import synthetic_events

        n_users, n_items = population(SIZES[label])
        snapshot = EventLogSnapshot(events=synthetic_events(SIZES[label], n_users, n_items, seed=SEED), erased={},
                                    scanned_at=datetime.now(timezone.utc))

        def read(progress: Any) -> Any:
            return snapshot
    else:
        def read(progress: Any) -> Any:
            return read_export(s3, spec["export_uri"], progress)
    rss_before = peak_rss_mb()
    began = time.perf_counter()
    result = retrain(read, registry, DEFAULT_EVENT_WEIGHTS, options, PhasePrinter())
    wall = time.perf_counter() - began
    peak = peak_rss_mb()  # before the baseline, whose copies of the matrix are not the retrain's
    if not result.published or result.search is not None or result.chosen != PARAMETERS:
        raise RuntimeError(f"not the retrain meant: published {result.published}, search {result.search}, "
                           f"chose {result.chosen}")
    matrix = trained_matrix(result.artifact)
    if matrix.nnz != result.counts["interactions"]:
        raise RuntimeError(f"rebuilt matrix has {matrix.nnz} interactions, the retrain {result.counts['interactions']}")
    say(f"{label}: retrain {wall:.1f} s (read {result.timings['read']:.1f} s)", started)
    fit_seconds = None
    if not spec["in_memory"]:
        fit_seconds = fit_alone(matrix, result.chosen)
        say(f"{label}: fit alone {fit_seconds:.1f} s", started)
    phases = {name: round(seconds, 3) for name, seconds in result.timings.items()}
    # The live-model lookup and the gate run between phases, untimed by the retrain.
    phases["between_phases"] = round(wall - sum(result.timings.values()), 3)
    return {
        "wall_s": wall, "read_s": result.timings["read"], "fit_s": fit_seconds, "phases": phases,
        "peak_mb": round(peak, 1), "rss_before_retrain_mb": round(rss_before, 1),
        "counts": result.counts, "gate_passed": result.metrics["gate"]["passed"], "in_memory": spec["in_memory"],
        "ndcg_at_10": {"candidate": round(result.metrics["candidate"]["ndcg@10"], 4),
                       "popularity": round(result.metrics["popularity"]["ndcg@10"], 4)},
        "openmp_threads": openmp_threads(),
    }


# --- the parent: setup and one child per size ----------------------------------------------------------


def run_size(label: str, s3_url: str, dynamodb_url: str, started: float, in_memory: bool = False) -> dict[str, Any]:
    """Write the export of size *label* into a fresh bucket (unless *in_memory*: the child makes the events),
    run its child, free the bucket; the child's figures."""
    from chalicelib.resources import Resources
    from scripts.benchmark_retrain import synthetic_events

    n_events = SIZES[label]
    n_users, n_items = population(n_events)
    settings = settings_for(s3_url, dynamodb_url)
    s3 = Resources(settings).s3
    bucket = settings.model_bucket
    s3.create_bucket(Bucket=bucket)
    export: dict[str, Any] = {"export_files": 0, "export_mb": 0.0}
    if not in_memory:
        events = synthetic_events(n_events, n_users, n_items, seed=SEED)
        check_export_lines(events, [0, n_events // 2, n_events - 1])
        began = time.perf_counter()
        export = write_export(s3, bucket, events)
        del events
        say(f"{label}: export of {n_events:,} events written ({export['export_files']} files, "
            f"{export['export_mb']} MB gzipped) in {time.perf_counter() - began:.0f} s", started)
    say(f"{label}: retraining in a child process{' (events in memory)' if in_memory else ''}", started)
    spec = {"label": label, "s3_url": s3_url, "dynamodb_url": dynamodb_url, "bucket": bucket, "in_memory": in_memory,
            "export_uri": f"s3://{bucket}/{EXPORT_PREFIX}",
            "parent_started_at": time.time() - (time.perf_counter() - started)}
    try:
        # stderr passes through (the child's progress); stdout carries its result.
        completed = subprocess.run([sys.executable, "-m", "benchmarks.retrain", "--child", json.dumps(spec)],
                                   cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"the {label} retrain failed (exit {completed.returncode})")
        line = next(line for line in reversed(completed.stdout.splitlines()) if line.startswith(RESULT_MARK))
        figures = json.loads(line[len(RESULT_MARK):])
    finally:
        empty_bucket(s3, bucket)  # moto keeps objects in this process's memory
    figures["sizes"] = {"events": n_events, "users_generated": n_users, "items_generated": n_items,
                        "users": figures["counts"]["users"], "items": figures["counts"]["items"],
                        "interactions": figures["counts"]["interactions"], **export}
    return figures


def empty_bucket(s3: Any, bucket: str) -> None:
    """Delete every object of *bucket*, then the bucket."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=bucket)


def run(quick: bool, sizes: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Measure P4 and the retrain at each size (*sizes*, else the mode's); times in seconds, memory in MB,
    None where not measured."""
    started = time.perf_counter()
    labels = sizes or (QUICK_SIZES if quick else FULL_SIZES)
    measured: dict[str, dict[str, Any]] = {}
    with local_stack() as (s3_url, dynamodb_url, engine):
        say(f"S3 on moto {s3_url}; sizes {', '.join(labels)}", started)
        for label in labels:
            in_memory = sizes is None and label in IN_MEMORY_IN_FULL_MODE
            measured[label] = run_size(label, s3_url, dynamodb_url, started, in_memory)
            one = measured[label]
            fit = f", fit alone {one['fit_s']:.1f} s" if one["fit_s"] else ""
            say(f"{label}: retrain without read {one['wall_s'] - one['read_s']:.1f} s{fit}, "
                f"peak {one['peak_mb']:,.0f} MB", started)
    say(f"done in {time.perf_counter() - started:.0f} s", started)

    figures: dict[str, Any] = {}
    for label in SIZES:
        one = measured.get(label)
        without_read = one["wall_s"] - one["read_s"] if one else None
        figures[f"retrain_s_{label}"] = round(without_read, 3) if one else None
        fit = one["fit_s"] if one else None
        figures[f"retrain_read_s_{label}"] = round(one["read_s"], 3) if one and not one["in_memory"] else None
        figures[f"fit_s_{label}"] = round(fit, 3) if fit else None
        figures[f"retrain_vs_fit_{label}"] = round(without_read / fit, 3) if fit else None
        figures[f"retrain_peak_mb_{label}"] = one["peak_mb"] if one else None
        figures[f"retrain_phases_{label}"] = one["phases"] if one else None
    big = measured.get("1M")
    return {
        "P4_retrain_vs_fit_1M": figures["retrain_vs_fit_1M"],
        **figures,
        "retrain_sizes": {label: one["sizes"] for label, one in measured.items()},
        "retrain_details": {label: {name: one[name] for name in ("rss_before_retrain_mb", "gate_passed",
                                                                   "ndcg_at_10", "in_memory")}
                            for label, one in measured.items()},
        "retrain_hyperparameters": asdict(PARAMETERS),
        "retrain_search": "off (budget 0): 2 fits, the evaluated candidate and a warm-started refit on everything",
        "retrain_threads": (big or next(iter(measured.values())))["openmp_threads"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # internal: one size, started by run_size
        parser = argparse.ArgumentParser(prog="python -m benchmarks.retrain --child")
        parser.add_argument("--child", required=True, help="JSON spec from run_size")
        spec = json.loads(parser.parse_args(argv).child)
        print(RESULT_MARK + json.dumps(run_child(spec)), flush=True)
        return 0
    if argv[:1] == ["--size"]:  # chosen sizes, e.g. the 10M one the full mode leaves out
        parser = argparse.ArgumentParser(prog="python -m benchmarks.retrain --size")
        parser.add_argument("--size", nargs="+", required=True, choices=list(SIZES))
        print(json.dumps(run(False, tuple(parser.parse_args(argv).size)), indent=1))
        return 0
    return standalone(run, __doc__, "100 000 events only (under half a minute)", argv)


if __name__ == "__main__":
    raise SystemExit(main())
