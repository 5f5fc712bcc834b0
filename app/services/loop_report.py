"""What the Loop page shows, without Streamlit: a dataset's review activity, what the review found, the app's own
learning curve (each model version's val micro-F1 against the reviewed labels there were when it was registered),
the measured curve of the annotation-loop benchmark (benchmarks/loop.json) with the gain it predicts for retraining
now, and the retraining schedule. Figures are small pure Plotly functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from sqlalchemy.orm import sessionmaker

from app.services.annotation_loop import expected_gain
from app.services.paths import REPO_ROOT
from db.datasets import list_datasets
from db.loop import (
    DecisionCount,
    ReviewOutcomes,
    Schedule,
    decision_counts,
    retrain_schedule,
    review_outcomes,
    reviewed_labels_at,
    set_retrain_schedule,
)
from db.model_versions import ModelVersionInfo, active_model, registered_models
from db.roles import Actor, require_admin

BENCHMARK = REPO_ROOT / "benchmarks" / "loop.json"


@dataclass(frozen=True)
class CurvePoint:
    version_id: str
    kind: str | None
    registered: datetime | None
    reviewed_labels: int
    val_f1: float
    active: bool


@dataclass(frozen=True)
class MeasuredCurve:
    """The benchmark's mean learning curve of one strategy on one dataset."""

    dataset: str
    strategy: str
    labels: list[int]
    mean_f1: list[float]
    seeds: int

    def gain_per_pair(self) -> float:
        """F1 per reviewed pair over the curve's last segment (its slope where labels are most plentiful)."""
        if len(self.labels) < 2:
            return 0.0
        return (self.mean_f1[-1] - self.mean_f1[-2]) / (self.labels[-1] - self.labels[-2])


@dataclass(frozen=True)
class GainEstimate:
    new_decisions: int  # label decisions since the active model was registered
    points: float | None  # expected change of val micro-F1 (0..1)
    how: str  # how the figure was read off the measured curve, in words


@dataclass(frozen=True)
class LoopReport:
    dataset: str
    decisions: list[DecisionCount]
    outcomes: ReviewOutcomes
    curve: list[CurvePoint]
    measured: MeasuredCurve | None
    gain: GainEstimate | None
    schedule: Schedule
    active: ModelVersionInfo | None


def dataset_names(sessions: sessionmaker) -> list[str]:
    """The store's datasets, the one the active model learned first (the page opens on it: after Add post, its
    one-post dataset came first by name), then by name."""
    with sessions() as session:
        names = [dataset.name for dataset in list_datasets(session)]
        active = active_model(session)
    learned = active.origin.dataset if active is not None else None
    return sorted(names, key=lambda name: name != learned)  # stable: by name after it


def measured_curve(
    path: Path | None = None, dataset: str = "mnre", strategy: str | None = None
) -> MeasuredCurve | None:
    """The winner's (or `strategy`'s) mean curve on `dataset` from the benchmark's JSON; None when the file or the
    entry is not there. A malformed file is an error that names it."""
    winner, curves = measured_curves(path).get(dataset, (None, []))
    name = strategy or winner
    return next((curve for curve in curves if curve.strategy == name), None)


def measured_curves(path: Path | None = None) -> dict[str, tuple[str, list[MeasuredCurve]]]:
    """Per dataset: the winning strategy and every strategy's mean curve, from the benchmark's JSON ({} when it has
    not been run)."""
    path = path or BENCHMARK
    if not path.is_file():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return {
            dataset: (
                entry["winner"],
                [
                    MeasuredCurve(
                        dataset,
                        name,
                        [int(x) for x in summary["labels"]],
                        [float(x) for x in summary["mean_f1"]],
                        len(summary["seeds"]),
                    )
                    for name, summary in sorted(entry["strategies"].items())
                ],
            )
            for dataset, entry in payload.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(
            f"{path}: not a benchmark summary written by benchmarks/bench_loop.py ({err})"
        ) from err


def _trained_on(version: ModelVersionInfo, dataset: str, source: str | None) -> bool:
    origin = version.origin
    return origin.dataset == dataset or (
        origin.dataset is None and source is not None and origin.data == source
    )


def estimate_gain(measured: MeasuredCurve, reviewed_then: int, reviewed_now: int) -> GainEstimate:
    """Read the measured curve: between the two label counts when both lie on it, else the curve's last slope times
    the new decisions (an extrapolation, said so)."""
    new = max(reviewed_now - reviewed_then, 0)
    within = expected_gain(measured.labels, measured.mean_f1, reviewed_then, reviewed_now)
    if within is not None:
        return GainEstimate(
            new, within, f"read off the measured curve between {reviewed_then} and {reviewed_now} labels"
        )
    slope = measured.gain_per_pair()
    return GainEstimate(
        new,
        slope * new,
        f"the measured curve's last step ({measured.labels[-2]} to {measured.labels[-1]} labels: "
        f"{100 * slope * 100:+.2f} points per 100 pairs) times the new decisions; outside the measured range, an "
        "extrapolation",
    )


def loop_report(sessions: sessionmaker, dataset: str, benchmark: Path | None = None) -> LoopReport:
    with sessions() as session:
        source = next((d.source_path for d in list_datasets(session) if d.name == dataset), None)
        decisions = decision_counts(session, dataset)
        active = active_model(session)
        outcomes = review_outcomes(session, dataset, active.key if active else None)
        versions = [
            v for v in registered_models(session) if v.val_f1 is not None and _trained_on(v, dataset, source)
        ]
        versions.sort(key=lambda v: v.created_at or datetime.min.replace(tzinfo=UTC))
        now = datetime.now(UTC)
        moments = [v.created_at or now for v in versions]
        counts = reviewed_labels_at(session, dataset, [*moments, now, active.created_at if active else now])
        schedule = retrain_schedule(session, dataset)
    curve = [
        CurvePoint(v.version_id, v.origin.kind, v.created_at, n, float(v.val_f1), v.active)
        for v, n in zip(versions, counts, strict=False)
    ]
    reviewed_now, reviewed_at_active = counts[-2], counts[-1]
    measured = measured_curve(benchmark)
    gain = estimate_gain(measured, reviewed_at_active, reviewed_now) if measured and active else None
    return LoopReport(dataset, decisions, outcomes, curve, measured, gain, schedule, active)


def save_schedule(
    sessions: sessionmaker, dataset: str, every: int | None, epochs: int, actor: Actor | None, who: str
) -> Schedule:
    """Turn the retraining schedule on (every N decisions) or off (None): admins only (db.roles)."""
    require_admin(actor, "change the retraining schedule")
    with sessions.begin() as session:
        return set_retrain_schedule(session, dataset, every, epochs, who)


# ---------------------------------------------------------------------------------------------------------------
# Figures


def decisions_figure(decisions: list[DecisionCount]) -> go.Figure:
    """Decisions per day, stacked by reviewer."""
    days = sorted({d.day for d in decisions})
    figure = go.Figure()
    for annotator in sorted({d.annotator for d in decisions}):
        per_day = {day: 0 for day in days}
        for d in decisions:
            if d.annotator == annotator:
                per_day[d.day] += d.count
        figure.add_bar(x=[day.isoformat() for day in days], y=list(per_day.values()), name=annotator)
    figure.update_layout(
        barmode="stack",
        height=300,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title="day (UTC)",
        yaxis_title="decisions",
        legend_title_text="reviewer",
        title="Decisions per day",
    )
    figure.update_xaxes(type="category")
    return figure


def learning_curve_figure(curve: list[CurvePoint], measured: MeasuredCurve | None) -> go.Figure:
    """The app's versions (val micro-F1, %) against the reviewed labels at registration, beside the benchmark's
    measured curve (its own x: labelled pairs of the simulated loop)."""
    figure = go.Figure()
    if curve:
        figure.add_scatter(
            x=[p.reviewed_labels for p in curve],
            y=[100 * p.val_f1 for p in curve],
            mode="lines+markers",
            name="this store's model versions",
            text=[
                f"{p.version_id} ({p.kind or 'registered'}){' · active' if p.active else ''}" for p in curve
            ],
            hovertemplate="%{text}<br>%{x} reviewed labels<br>val micro-F1 %{y:.2f} %<extra></extra>",
        )
    if measured is not None:
        figure.add_scatter(
            x=measured.labels,
            y=[100 * v for v in measured.mean_f1],
            mode="lines",
            line={"dash": "dot"},
            name=f"benchmark: {measured.strategy} order on {measured.dataset} ({measured.seeds} seeds)",
            hovertemplate="%{x} labelled pairs<br>val micro-F1 %{y:.2f} %<extra></extra>",
        )
    figure.update_layout(
        height=340,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title="reviewed labels",
        yaxis_title="val micro-F1 (%)",
        title="Learning curve",
        # always: Plotly hides the legend of a one-trace figure, and the benchmark's curve alone read as this store's
        showlegend=True,
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def benchmark_figure(curves: list[MeasuredCurve], winner: str | None = None) -> go.Figure:
    """The benchmark's mean learning curve of every strategy on one dataset (val micro-F1, %)."""
    figure = go.Figure()
    for curve in curves:
        figure.add_scatter(
            x=curve.labels,
            y=[100 * v for v in curve.mean_f1],
            mode="lines+markers",
            name=f"{curve.strategy}{' (the Queue default)' if curve.strategy == winner else ''}",
            line={"width": 3 if curve.strategy == winner else 1.5},
            hovertemplate=f"{curve.strategy}<br>%{{x}} labelled pairs<br>val micro-F1 %{{y:.2f}} %<extra></extra>",
        )
    figure.update_layout(
        height=340,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title="labelled pairs (seed set + reviewed)",
        yaxis_title="val micro-F1 (%), mean over seeds",
        title=f"Simulated annotation loop on {curves[0].dataset}" if curves else "Simulated annotation loop",
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def outcome_rows(outcomes: ReviewOutcomes) -> list[dict[str, Any]]:
    """The review's findings as table rows with their units."""

    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f} % ({part} of {whole})" if whole else "no reviewed pairs yet"

    return [
        {
            "finding": "gold label changed or pair rejected",
            "share": share(outcomes.corrected, outcomes.reviewed),
        },
        {
            "finding": "active model wrong on the reviewed label",
            "share": share(outcomes.model_wrong, outcomes.with_prediction),
        },
    ]
