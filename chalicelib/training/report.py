"""The retrain report: a markdown summary and a PNG chart."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

from chalicelib.training.retrain import PHASES, RetrainResult  # noqa: E402

_COLUMNS = ("precision", "recall", "ndcg", "map")
_ENGINE_TEXT = {"implicit": "implicit's ALS on this machine", "spark": "Spark MLlib's ALS (`implicitPrefs=True`)"}


def _row(name: str, metrics: dict[str, float] | None, k: int) -> str:
    if metrics is None:
        return f"| {name} | " + " | ".join("–" for _ in range(len(_COLUMNS) + 1)) + " |"
    cells = [f"{metrics[f'{column}@{k}']:.4f}" for column in _COLUMNS] + [f"{metrics['coverage']:.3f}"]
    return f"| {name} | " + " | ".join(cells) + " |"


def markdown(result: RetrainResult, insights_report: str | None = None) -> str:
    """The report as markdown; *insights_report*, the address of the latest weekly insights report, is linked."""
    options, metrics, k = result.options, result.metrics, result.options.k
    used = result.split.used if result.split else options.split
    split_text = ("time split: each user's most recent interactions held out"
                  if used == "time" else "random split stratified by user")
    if result.split and result.split.tied and used == "time":
        split_text += (f"; ties of equal times decided {result.split.tied} of the {result.split.held_out} held-out "
                       f"interactions ({result.split.tied_share:.0%}), broken at random")
    lines = [
        "# Retrain report",
        "",
        f"Decision: **{'published ' + result.version if result.published else 'not published'}** — {result.reason}",
        "",
        *[f"> **Warning:** {warning}\n" for warning in result.warnings],
        f"Evaluation: {split_text} ({options.test_fraction:.0%} of each user's positive interactions, seed "
        f"{options.seed}), top-{k}, {metrics.get('evaluated_users', 0)} users evaluated. Hyperparameters chosen "
        "on a validation split carved from the training part only.",
        "",
        f"Engine: {_ENGINE_TEXT.get(result.engine, result.engine)}.",
        "",
        *([f"Content insights: the latest weekly report is at `{insights_report}` (`scripts/insights_report.py`).",
           ""] if insights_report else []),
        "Event values: " + (", ".join(f"`{name}` weighed by {entry['transform']}(value)"
                                      + (f" capped at {entry['cap']:g}" if entry["cap"] is not None else "")
                                      for name, entry in result.event_values.items())
                            or "not used (each event weighs its type's weight)") + ".",
        "",
        "| model | precision | recall | nDCG | MAP | coverage |",
        "|---|---|---|---|---|---|",
        _row("candidate", metrics.get("candidate"), k),
        _row(f"live ({result.live_version or 'none'})", metrics.get("live"), k),
        _row("popularity", metrics.get("popularity"), k),
        "",
        "## Data",
        "",
        "| " + " | ".join(result.counts) + " |",
        "|" + "---|" * len(result.counts),
        "| " + " | ".join(str(value) for value in result.counts.values()) + " |",
        "",
        "## Search",
        "",
        f"Chosen: `{asdict(result.chosen) if result.chosen else None}`",
        "",
        "| # | factors | regularization | alpha | iterations | validation nDCG | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    if result.search:
        for number, trial in enumerate(result.search.trials, start=1):
            p = trial.params
            lines.append(f"| {number} | {p.factors} | {p.regularization} | {p.alpha} | {p.iterations} | "
                         f"{trial.metrics[result.search.target]:.4f} | {trial.seconds:.1f} |")
    lines += ["", "## Wall time per phase", "", "| phase | seconds |", "|---|---|"]
    lines += [f"| {phase} | {result.timings[phase]:.1f} |" for phase in PHASES if phase in result.timings]
    return "\n".join(lines) + "\n"


def chart(result: RetrainResult, path: Path) -> None:
    """Metrics of candidate vs live vs popularity, and the search's validation scores, as a PNG."""
    k = result.options.k
    figure, (bars, search) = plt.subplots(1, 2, figsize=(11, 4))
    models = [(name, result.metrics.get(name)) for name in ("candidate", "live", "popularity")]
    models = [(name, values) for name, values in models if values]
    width = 0.8 / max(len(models), 1)
    for offset, (name, values) in enumerate(models):
        heights = [values[f"{column}@{k}"] for column in _COLUMNS]
        bars.bar([i + offset * width for i in range(len(_COLUMNS))], heights, width, label=name)
    bars.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(_COLUMNS))])
    bars.set_xticklabels([f"{column}@{k}" for column in _COLUMNS])
    bars.set_title("held-out test split")
    bars.legend()
    if result.search:
        scores = [trial.metrics[result.search.target] for trial in result.search.trials]
        search.plot(range(1, len(scores) + 1), scores, "o-")
        best = max(range(len(scores)), key=scores.__getitem__)
        search.plot([best + 1], [scores[best]], "r*", markersize=14, label="chosen")
        search.set_xlabel("trial")
        search.set_ylabel(f"validation {result.search.target}")
        search.set_title("hyperparameter search")
        search.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(result: RetrainResult, folder: Path, insights_report: str | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.png`` into *folder*; returns their paths.

    *insights_report*: the address of the latest weekly insights report, linked when given.
    """
    folder.mkdir(parents=True, exist_ok=True)
    text_path, chart_path = folder / "report.md", folder / "report.png"
    text_path.write_text(markdown(result, insights_report))
    chart(result, chart_path)
    return text_path, chart_path
