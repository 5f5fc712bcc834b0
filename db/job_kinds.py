"""The job kinds: one table of what each kind is called, how urgent it is, whether it trains and what it registers.

The jobs table's CHECK constraint (db.models), db.jobs, the app's job queue and its pages all read this table; the
runner of each kind is in app.jobs.runner.RUNNERS (db/ never imports app/), which a test keeps in step with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobKind:
    name: str
    display: str  # what the job does, in words, for the sidebar and the Jobs page
    priority: int  # higher runs first among queued jobs
    trains: bool  # makes or changes models: admins only (db.roles)
    makes_model: bool  # registers a model version the app may activate: the sidebar says it is "training"
    registers: str  # what it leaves in the label store


# a scoring job goes before a training waiting in the queue: the reviewer sees the new model's predictions minutes
# after it is activated, not after the next training; the explanation precompute runs after the scoring it
# orders the queue by; planning a cross-fit takes seconds, its folds train like any other model, after the first
JOB_KIND_TABLE = (
    JobKind("score", "scoring the queue", 10, False, False, "predictions"),
    JobKind("crossfit", "planning Find label errors", 6, True, False, "crossfit_fold jobs"),
    JobKind("grounding", "batch grounding", 5, False, False, "grounded crops (files under var/)"),
    JobKind(
        "explanations",
        "precomputing Inspect's explanations for the top of the queue",
        4,
        False,
        False,
        "explanations",
    ),
    JobKind("retrain", "a retraining", 3, True, True, "a model version and two evaluation runs"),
    JobKind("first_model", "the first model", 2, True, True, "a model version"),
    JobKind(
        "crossfit_fold",
        "a fold of Find label errors",
        1,
        True,
        False,
        "a fold model; the last a crossfit run",
    ),
    JobKind("default_model", "the default recipe", 0, True, True, "a model version"),
    JobKind("shuffle", "the shuffle experiment", 0, True, False, "evaluation runs (Table 1)"),
    JobKind("ablation", "the ablation runs", 0, True, False, "evaluation runs (Table 2)"),
    # explains a model already trained (as the explanations job does): no training, so reviewers may start it
    JobKind(
        "plausibility",
        "scoring the explanations against the rationales",
        0,
        False,
        False,
        "the plausibility table (the job's outcome)",
    ),
)
KINDS = {kind.name: kind for kind in JOB_KIND_TABLE}
JOB_KINDS = tuple(KINDS)  # the names the jobs table accepts (CHECK constraint kind_known)
MODEL_KINDS = tuple(kind.name for kind in JOB_KIND_TABLE if kind.makes_model)


def job_kind(name: str) -> JobKind | None:
    return KINDS.get(name)
