"""Which model the app is using and how good it is, without Streamlit (app.ui.model_status draws it).

model_status_line(session) -> str       "Model X, val micro-F1 52.3 · training: ..." (the sidebar)
weakness(version) -> str | None         the one weak-model rule, used by every page that marks a model weak
no_active_model_text(status, meaning)   before the first model: what is missing and what is training (every page)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from db.job_kinds import MODEL_KINDS, job_kind
from db.jobs import pending_jobs, running_jobs
from db.model_versions import ModelVersionInfo, active_model
from db.models import Job, utcnow

WEAK_F1 = 0.50  # below this val micro-F1 a model's suggestions and explanations are mostly noise
# a model that never gets this share of the relations with val records right (F1 0) is weak whatever its micro-F1:
# a micro-F1 of 50.86 can come from the frequent relations alone while 14 of 23 are never predicted right
UNLEARNED_SHARE = 0.25


def job_name(job: Job) -> str:
    """What a job does, in words (db.job_kinds: "scoring the queue"; an explanations job names how many pairs, a
    training the variant it trains: "the first model (objects)")."""
    params = job.params or {}
    if job.kind == "explanations" and params.get("top"):
        return f"precomputing Inspect's explanations for the top {params['top']} pairs"
    kind = job_kind(job.kind)
    name = kind.display if kind is not None else job.kind
    return (
        f"{name} ({params['variant']})"
        if kind is not None and kind.trains and params.get("variant")
        else name
    )


def weakness(version: ModelVersionInfo | None) -> str | None:
    """Why a model's suggestions and explanations are not worth much, in words; None for a model that is not weak.

    Weak: no model, no stored val micro-F1, one below WEAK_F1, or F1 0 on at least UNLEARNED_SHARE of the
    relations that have val records ("None" aside)."""
    if version is None:
        return "no model is active"
    if version.val_f1 is None:
        return "its val micro-F1 is unknown"
    if version.val_f1 < WEAK_F1:
        return f"val micro-F1 {100 * version.val_f1:.1f} %, below {100 * WEAK_F1:.0f} %"
    unlearned, relations = version.val.unlearned_labels(), version.val.relations_with_support()
    if relations and len(unlearned) / relations >= UNLEARNED_SHARE:
        return (
            f"val micro-F1 {100 * version.val_f1:.1f} %, but F1 0 on {len(unlearned)} of the {relations} "
            "relations with val records"
        )
    return None


@dataclass
class ModelStatus:
    active: ModelVersionInfo | None
    training: Job | None  # the model-making job running now, else the next one queued

    @property
    def version(self) -> str | None:
        return self.active.version_id if self.active is not None else None

    @property
    def val_f1(self) -> float | None:  # 0..1
        return self.active.val_f1 if self.active is not None else None

    @property
    def weak(self) -> bool:
        return weakness(self.active) is not None


def model_status(session: Session) -> ModelStatus:
    jobs = [j for j in running_jobs(session) + pending_jobs(session) if j.kind in MODEL_KINDS]
    return ModelStatus(active_model(session), jobs[0] if jobs else None)


def training_text(job: Job) -> str:
    """ "the first model is training (42%, epoch 1/1, model expected ~10:12 UTC)" or "... is queued (job 3)"."""
    name = job_name(job)
    if job.status != "running":
        return f"{name} is queued (job {job.id})"
    progress = job.progress or {}
    parts = [f"{100 * progress.get('fraction', 0):.0f}%"]
    if progress.get("epoch"):
        parts.append(f"epoch {progress['epoch']}/{progress['epochs']}")
    if progress.get("eta_s") is not None:
        eta = utcnow() + timedelta(seconds=progress["eta_s"])
        parts.append(f"model expected ~{eta:%H:%M} UTC")
    return f"{name} is training ({', '.join(parts)}; job {job.id})"


def model_status_line(session: Session) -> str:
    status = model_status(session)
    if status.version is None:
        text = "**No model yet**: the queue, review and export work without predictions."
    else:
        f1 = f"val micro-F1 {100 * status.val_f1:.1f} %" if status.val_f1 is not None else "val F1 unknown"
        text = f"Model **{status.version}**, {f1}" + (" (weak)" if status.weak else "")
    if status.training is not None:
        text += f" · {training_text(status.training)}"
    elif status.version is None:
        text += " Nothing is training: start a model on the Models page."
    return text


def no_active_model_text(status: ModelStatus, meaning: str) -> str:
    """Before the first model, what a page says: what is missing (`meaning`) and what the sidebar says is training,
    or that nothing is (then the Models page starts one)."""
    if status.training is not None:
        return f"No model is active yet: {meaning}. Meanwhile {training_text(status.training)}."
    return f"No model is active yet: {meaning}. Nothing is training: start a model on the **Models** page."
