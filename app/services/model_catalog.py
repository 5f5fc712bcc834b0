"""What the Models page shows, without Streamlit: every registered version (db.model_versions.ModelVersionInfo) with
its val figures, the trainings queued or running, the datasets a training can read, and two versions compared on
val.

    models_overview(sessions) -> ModelsOverview                       versions, pending trainings, training sources
    compare_versions(sessions, a, b, active) -> VersionComparison     pairs scored by both, changes, who is missing
    label_f1_rows(a, b) -> list[dict]                                 per-label val F1 before / after, and micro
    version_rows(versions), per_label_rows(version)                    the Models page's tables as rows
    val_summary(version)                                               precision, recall, F1 and records in words
    comparison_note(comparison) -> (kind, text)                       what the comparison can say so far
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from app.services.job_board import JobView, job_view
from app.services.model_jobs import TRAINING_NAMES, training_sources
from db.jobs import ACTIVE_STATUSES, latest_job, pending_jobs, running_jobs
from db.model_compare import prediction_changes, scored_pairs
from db.model_versions import ModelVersionInfo, ValMetrics, registered_models

__all__ = ["ModelVersionInfo", "ModelsOverview", "VersionComparison", "compare_versions", "models_overview"]

NO_FIGURES = ValMetrics(None, None, None, None, None)


def val(version: ModelVersionInfo) -> ValMetrics:
    """A version's val figures; empty ones (every figure None) when it stored none."""
    return version.val or NO_FIGURES


def percent(value) -> float | None:
    return 100 * value if value is not None else None


def label_f1(version: ModelVersionInfo, label: str) -> float | None:
    """A version's val F1 on one label in percent; None when the version stored no figure for that label or the
    label has no val record (its stored 0.0 would read as "never right")."""
    figures = val(version).per_label.get(label)
    if figures is not None and figures.support == 0:
        return None
    return percent(val(version).label_f1(label))


@dataclass(frozen=True)
class ModelsOverview:
    versions: list[ModelVersionInfo]  # every registered version
    pending: dict[str, JobView | None]  # training kind -> its job queued or running, if any
    sources: dict[str, str]  # dataset -> MNRE-layout folder still on this machine (what a training can read)

    @property
    def active(self) -> ModelVersionInfo | None:
        return next((version for version in self.versions if version.active), None)


def models_overview(sessions: sessionmaker) -> ModelsOverview:
    with sessions() as session:
        versions = registered_models(session)
        pending = {kind: latest_job(session, (kind,), ACTIVE_STATUSES) for kind in TRAINING_NAMES}
        pending = {kind: job_view(job) if job is not None else None for kind, job in pending.items()}
    return ModelsOverview(versions, pending, training_sources(sessions))


@dataclass(frozen=True)
class VersionComparison:
    both: int  # val pairs scored by both versions
    changed: list[dict]  # the pairs whose prediction changed
    missing: list[str]  # versions that have not scored val (nothing to compare yet)
    scoring: list[str]  # versions with a scoring job queued or running (the comparison is not complete yet)


def compare_versions(
    sessions: sessionmaker,
    version_a: ModelVersionInfo,
    version_b: ModelVersionInfo,
    active: ModelVersionInfo | None,
) -> VersionComparison:
    pair = (version_a, version_b)
    with sessions() as session:
        both, changed = prediction_changes(session, version_a.key, version_b.key, "val")
        missing = [version.version_id for version in pair if scored_pairs(session, version.key, "val") == 0]
        scoring_jobs = [job for job in running_jobs(session) + pending_jobs(session) if job.kind == "score"]
        # a score job without a model_version scores the active model
        scored = {
            (job.params or {}).get("model_version", active.version_id if active else None)
            for job in scoring_jobs
        }
    return VersionComparison(
        both, changed, missing, [version.version_id for version in pair if version.version_id in scored]
    )


def label_f1_rows(version_a: ModelVersionInfo, version_b: ModelVersionInfo) -> list[dict]:
    """Per-label val F1 of two versions in percent, then micro; a label a version stored no figure for, or one
    without val records, stays None (not 0.0). Labels with a figure come first."""
    labels = sorted(set(val(version_a).per_label) | set(val(version_b).per_label))
    rows = [
        {"label": label, "F1 before": label_f1(version_a, label), "F1 after": label_f1(version_b, label)}
        for label in labels
    ]
    rows.sort(key=lambda row: row["F1 before"] is None and row["F1 after"] is None)  # stable: A-Z within each
    return rows + [
        {
            "label": "micro (non-None)",
            "F1 before": percent(val(version_a).f1),
            "F1 after": percent(val(version_b).f1),
        }
    ]


def job_text(version: ModelVersionInfo) -> str:
    """The job that trained a version ("job 12"); empty for a checkpoint registered by hand. Its kind is in the
    version's details; who started it is the table's "created by" (created_by_text): "job 5 (first_model, Ann)"
    and "job 5 (first_model)" beside it were both cut at 1600 px."""
    return "" if version.origin.job is None else f"job {version.origin.job}"


def created_by_text(version: ModelVersionInfo) -> str | None:
    """Who made a version: whoever started the job that trained it, else who registered it (a job registers its
    version as "job 5 (first_model)", which repeats the job column)."""
    return version.origin.started_by or version.created_by


def version_rows(versions: list[ModelVersionInfo]) -> list[dict]:
    """One row per registered version for the Models table: val figures in percent; None for anything not stored
    (the page draws it as a dash)."""
    return [
        {
            "version": version.version_id,
            "active": version.active,
            "variant": version.variant,
            # stored from config.json at registration: no checkpoint file is read per row; None when not stored
            "architecture": version.architecture,
            "text encoder": version.text_encoder,
            "val F1": percent(val(version).f1),
            "training data": version.origin.describe_data(),
            "job": job_text(version) or None,
            "created by": created_by_text(version),
            "created": version.created_at.strftime("%Y-%m-%d %H:%M") if version.created_at else None,
        }
        for version in versions
    ]


def val_summary(version: ModelVersionInfo) -> str:
    """ "val micro P 97.50 % · R 97.50 % · F1 97.50 % on 200 records", each figure not stored said so."""
    figures = val(version)

    def shown(fraction: float | None) -> str:
        return "not stored" if fraction is None else f"{100 * fraction:.2f} %"

    records = f" on {figures.records:,} records" if figures.records is not None else " (records not stored)"
    return f"val micro P {shown(figures.precision)} · R {shown(figures.recall)} · F1 {shown(figures.f1)}{records}"


def per_label_rows(version: ModelVersionInfo) -> list[dict]:
    """A version's stored per-label val figures in percent, with each label's support."""
    return [
        {
            "label": name,
            "P": percent(metrics.precision),
            "R": percent(metrics.recall),
            "F1": percent(metrics.f1),
            "support": metrics.support,
        }
        for name, metrics in val(version).per_label.items()
    ]


def comparison_note(comparison: VersionComparison) -> tuple[str, str]:
    """(kind, text) saying how far the comparison of two versions' val predictions can be trusted: "info" while
    a version has not scored val (no pair to compare: "changed on 0" would read as "the two agree") or is still
    scoring, else "caption" with the counts."""
    both, changed, missing, scoring = (
        comparison.both,
        len(comparison.changed),
        comparison.missing,
        comparison.scoring,
    )
    if missing:
        return "info", (
            f"{' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} not scored val yet (a scoring job "
            "may still be running: see Jobs), so the predictions cannot be compared yet."
        )
    if scoring:
        return "info", (
            f"{' and '.join(scoring)} {'is' if len(scoring) == 1 else 'are'} still scoring (see Jobs): so far "
            f"{both:,} val pairs are scored by both and the prediction changed on {changed:,}; the comparison is "
            "complete when the scoring ends."
        )
    return "caption", f"{both:,} val pairs scored by both; the prediction changed on {changed:,}."
