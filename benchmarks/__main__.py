"""``make bench``: every benchmark, each in a fresh process, into ``benchmarks/results.json`` and a table.

Each benchmark module has ``run(quick) -> dict`` and compares its figure with
a peer or a physical floor measured in the same run on the same machine, so
the ratios hold across machines where the milliseconds do not. BLAS is set to
one thread before numpy is imported (the serving path's setting on a 1-vCPU
Lambda), and said so in the results.

  python -m benchmarks                 # everything (under 15 minutes on 2 cores)
  python -m benchmarks --quick         # a smoke run of each, in about 3 minutes
  python -m benchmarks --only serving  # one or several modules
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_JSON = BENCHMARKS_DIR / "results.json"
RESULTS_MD = BENCHMARKS_DIR / "results.md"
QUICK_JSON = BENCHMARKS_DIR / "results-quick.json"
QUICK_MD = BENCHMARKS_DIR / "results-quick.md"
BLAS_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: The modules run, in this order.
MODULES = ("serving", "approximate", "coldstart", "ingest", "retrain", "realtime", "quality")
#: Every ratio of the suite: (what it compares, its target as (operator, bound)).
RATIOS: dict[str, tuple[str, tuple[str, float]]] = {
    "P1_serving_vs_numpy": ("GET /users/{id}/recommendations p50 ÷ bare numpy kernel, 100k items", ("<=", 1.15)),
    "P1_serving_vs_numpy_1M": ("the same at 1M items", ("<=", 1.15)),
    "P1_serving_vs_implicit": ("our p50 ÷ implicit's single-user recommend, 100k items", ("<=", 1.0)),
    "P1_serving_vs_implicit_1M": ("the same at 1M items", ("<=", 1.0)),
    "P2_cold_start_vs_floor": ("new process to first answer ÷ new process that loads model.npz from S3, 100k",
                               ("<=", 1.3)),
    "P2_cold_start_vs_floor_1M": ("the same at 1M items", ("<=", 1.3)),
    "P3_realtime_vs_model_only": ("real-time answer (20 fresh events from DynamoDB) ÷ model-only answer, 100k",
                                  ("<=", 2.0)),
    "P4_retrain_vs_fit_1M": ("retrain end to end (without the read) ÷ implicit fit alone, 1M interactions",
                             ("<=", 2.0)),
    "P5_ingest_vs_batch_write": ("events/s through POST /events ÷ pynamodb batch_write alone", (">=", 0.8)),
    "P6_approx_vs_exact_1M": ("approximate top-N ÷ exact, GET /users/{id}/recommendations p50, 1M items",
                              ("<=", 0.25)),
    "recall_at_10_approx": ("recall@10 of those approximate answers against exact ones, 1M items", (">=", 0.98)),
    "Q3_realtime_lift": ("MovieLens replay, users new to the model, 3 fresh events: nDCG@10 real-time ÷ "
                         "model-only (popularity)", (">=", 1.3)),
    "Q3_realtime_lift_known_users": ("the same for users the model knows (model-only: their trained factors)",
                                     (">=", 1.3)),
}


#: Figures shown beside the ratios: (key, label, unit).
RAW_FIGURES = (
    ("serving_p50_ms_100k", "our p50, 100k items", "ms"),
    ("numpy_p50_ms_100k", "numpy kernel p50, 100k items", "ms"),
    ("implicit_p50_ms_100k", "implicit recommend p50, 100k items", "ms"),
    ("serving_p50_ms_1M", "our p50, 1M items", "ms"),
    ("numpy_p50_ms_1M", "numpy kernel p50, 1M items", "ms"),
    ("implicit_p50_ms_1M", "implicit recommend p50, 1M items", "ms"),
    ("realtime_p50_ms_100k", "real-time answer p50, 100k items", "ms"),
    ("P3_dynamodb_read_share", "share of the real-time p50 that is the DynamoDB read", ""),
    ("cold_start_s_100k", "cold start to first answer, 100k items", "s"),
    ("floor_s_100k", "floor (load model.npz from S3), 100k items", "s"),
    ("cold_start_s_1M", "cold start to first answer, 1M items", "s"),
    ("floor_s_1M", "floor, 1M items", "s"),
    ("bundle_zip_mb", "Lambda bundle, zipped", "MB"),
    ("retrain_read_s_1M", "retrain's read of 1M interactions (export in S3), not in P4", "s"),
    ("retrain_s_1M", "retrain without the read, 1M interactions", "s"),
    ("fit_s_1M", "implicit fit alone, 1M interactions", "s"),
    ("api_events_per_s", "POST /events", "events/s"),
    ("batch_write_events_per_s", "pynamodb batch_write alone", "events/s"),
)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "blas_threads": 1}


def run_module(name: str, quick: bool) -> tuple[dict[str, Any], float]:
    """Run ``benchmarks.<name>`` in a fresh process; its result and wall time."""
    started = time.perf_counter()
    script = ("import json, sys; from benchmarks import {0}; "
              "print('@@RESULT@@' + json.dumps({0}.run(quick={1})))").format(name, quick)
    completed = subprocess.run([sys.executable, "-c", script], cwd=BENCHMARKS_DIR.parent,
                               env={**os.environ, **BLAS_THREADS}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"benchmarks.{name} failed (exit {completed.returncode}):\n{tail}")
    line = next(line for line in reversed(completed.stdout.splitlines()) if line.startswith("@@RESULT@@"))
    return json.loads(line[len("@@RESULT@@"):]), seconds


def met(value: float | None, target: tuple[str, float]) -> str:
    if value is None:
        return "not measured"
    operator, bound = target
    return "met" if (value <= bound if operator == "<=" else value >= bound) else "missed"


def table(results: dict[str, Any]) -> str:
    """The markdown table README's "Performance" shows."""
    when = results["finished_at"][:10]
    cpu = results["machine"]
    rerun = results["rerun_modules"]
    lines = [f"Measured {when} on {cpu['cpu']} ({cpu['cores']} cores), Python {cpu['python']}, "
             f"BLAS threads 1; `make bench` took {results['full_run_seconds'] or results['seconds']:.0f} s"
             + (f" ({', '.join(rerun)} re-run on {'their' if len(rerun) > 1 else 'its'} own since)." if rerun
                else "."), "",
             "| ratio | what | value | target | |", "|---|---|---:|---|---|"]
    for key, (what, target) in RATIOS.items():
        value = results["figures"].get(key)
        shown = f"{value:.2f}" if isinstance(value, (int, float)) else "–"
        lines.append(f"| `{key}` | {what} | {shown} | {target[0]} {target[1]:g} | {met(value, target)} |")
    raw = [(label, results["figures"].get(key), unit) for key, label, unit in RAW_FIGURES]
    if any(value is not None for _, value, _ in raw):
        lines += ["", "| raw figure | value |", "|---|---:|"]
        lines += [f"| {label} | {value:,.2f} {unit} |" for label, value, unit in raw if value is not None]
    lines += scaling_tables(results["figures"])
    lines += realtime_table(results["figures"])
    quality = results["figures"]
    if "Q1_ndcg_at_10" in quality:
        folds = quality.get("Q1_validation_folds", 2)
        lines += ["", f"Q1 (MovieLens-100k protocol, mean over split seeds {quality['Q1_seeds']}, search budget "
                      f"{quality['Q1_search_budget']} on {folds} validation folds): "
                      f"nDCG@10 {quality['Q1_ndcg_at_10']:.4f}, MAP@10 {quality['Q1_map_at_10']:.4f} (popularity nDCG@10 "
                      f"{quality['Q1_popularity_ndcg_at_10']:.4f})."]
    return "\n".join(lines) + "\n"


def realtime_table(figures: dict[str, Any]) -> list[str]:
    """README's "What real-time personalisation buys": Q3's test period, then its validation curve."""
    rows = figures.get("Q3_test")
    if not rows:
        return []
    weight = figures["Q3_fresh_weight_chosen"]
    lines = ["", f"Q3, MovieLens-100k replayed in time order (test period; fresh weight {weight:g}, chosen on "
                 "validation; nDCG@10 of the answer against the 10 ratings that follow):", "",
             "| fresh events k | users | requests | model-only | real-time | lift (90 % interval) | "
             "lift with fresh weight 1 |", "|---:|---|---:|---:|---:|---|---:|"]
    for row in rows:
        interval = row["lift_90_interval"]
        lift = "–" if row["lift"] is None else f"×{row['lift']:.2f}"
        within = f" ({interval[0]:.2f}–{interval[1]:.2f})" if interval else ""
        before = "–" if row["lift_fresh_weight_1"] is None else f"×{row['lift_fresh_weight_1']:.2f}"
        lines.append(f"| {row['k']} | {row['users']} | {row['requests']} | {row['model_only_ndcg_at_10']:.4f} | "
                     f"{row['realtime_ndcg_at_10']:.4f} | {lift}{within} | {before} |")
    curve = figures.get("Q3_validation_curve") or []
    if curve:
        model_only = [row["model_only_ndcg_at_10"] for row in figures["Q3_validation"] if row["users"] == "known"]
        lines += ["", "Validation period, users the model knows: real-time nDCG@10 by fresh weight, the best mean "
                      "chosen:", "", "| fresh weight | k = 1 | k = 3 | k = 5 | mean |", "|---:|---:|---:|---:|---:|",
                  "| model-only | " + " | ".join(f"{value:.4f}" for value in model_only)
                  + f" | {sum(model_only) / len(model_only):.4f} |"]
        lines += [f"| {point['fresh_weight']:g} | {point['known_ndcg_at_10_k1']:.4f} | "
                  f"{point['known_ndcg_at_10_k3']:.4f} | {point['known_ndcg_at_10_k5']:.4f} | "
                  f"{point['known_ndcg_at_10_mean_over_k']:.4f} |" for point in curve]
    return lines


def scaling_tables(figures: dict[str, Any]) -> list[str]:
    """README's scaling tables: serving p50 by catalogue size, retrain time and memory by interactions."""
    lines: list[str] = []

    def ms(key: str) -> str:
        value = figures.get(key)
        return f"{value:.2f} ms" if isinstance(value, (int, float)) else "–"

    sizes = [size for size in ("10k", "100k", "1M") if f"serving_exact_p50_ms_{size}" in figures]
    if sizes:
        lines += ["", "| items | recommendations, exact | approximate | recall@10 | similar items, exact | "
                      "approximate | recall@10 | index: lists, probes (similar) |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for size in sizes:
            index = figures.get(f"approximate_index_{size}") or {}
            lines.append(
                f"| {size} | {ms(f'serving_exact_p50_ms_{size}')} | {ms(f'serving_approx_p50_ms_{size}')} | "
                f"{figures[f'recall_at_10_approx_{size}']:.3f} | {ms(f'similar_exact_p50_ms_{size}')} | "
                f"{ms(f'similar_approx_p50_ms_{size}')} | {figures[f'similar_recall_at_10_approx_{size}']:.3f} | "
                f"{index.get('lists')}, {index.get('probes')} ({index.get('similar_probes') or 'exact'}) |")
    retrains = [size for size in ("100k", "1M", "10M") if figures.get(f"retrain_s_{size}") is not None]
    if retrains:
        lines += ["", "| events | read (export) | retrain without the read | implicit fit alone | ratio | "
                      "peak memory |", "|---|---:|---:|---:|---:|---:|"]
        for size in retrains:
            retrain, fit, read = (figures.get(f"{name}_{size}") for name in ("retrain_s", "fit_s", "retrain_read_s"))
            lines.append(f"| {size} | {f'{read:.1f} s' if read else 'in memory'} | {retrain:.1f} s | "
                         f"{f'{fit:.1f} s' if fit else '–'} | {f'{retrain / fit:.2f}' if fit else '–'} | "
                         f"{figures[f'retrain_peak_mb_{size}']:,.0f} MB |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of each benchmark")
    parser.add_argument("--only", nargs="+", choices=MODULES, help="run only these modules")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    durations: dict[str, float] = {}
    full_seconds = None
    rerun: list[str] = []
    if args.only and not args.quick and RESULTS_JSON.exists():  # a partial run updates the last full one
        previous = json.loads(RESULTS_JSON.read_text())
        figures, durations = previous["figures"], previous["module_seconds"]
        full_seconds = previous.get("full_run_seconds", previous["seconds"])
        rerun = previous.get("rerun_modules", [])  # every module re-run since the full run, not just this time's
    failures: dict[str, str] = {}
    for name in args.only or MODULES:
        print(f"[bench] {name} ...", flush=True)
        try:
            result, seconds = run_module(name, args.quick)
        except RuntimeError as exc:
            failures[name] = str(exc)
            print(f"[bench] {exc}", file=sys.stderr, flush=True)
            continue
        figures.update(result)
        durations[name] = round(seconds, 1)
        print(f"[bench] {name}: {seconds:.0f} s", flush=True)
    results = {
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick, "machine": machine(), "seconds": round(time.perf_counter() - started, 1),
        "full_run_seconds": full_seconds if args.only else round(time.perf_counter() - started, 1),
        "rerun_modules": [*rerun, *(name for name in args.only or () if name not in rerun)],
        "module_seconds": durations, "failures": failures,
        "figures": {**{key: None for key in RATIOS}, **figures},
    }
    # A smoke run never replaces the figures README shows.
    json_path, md_path = (QUICK_JSON, QUICK_MD) if args.quick else (RESULTS_JSON, RESULTS_MD)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(table(results))
    print(md_path.read_text())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
