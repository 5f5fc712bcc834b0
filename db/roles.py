"""Who may change what in the label store.

Everyone who is logged in is a reviewer: they review, add posts and export. Only an admin activates a model
version, starts a retraining (or another job that registers or activates models) and deletes or (re-)imports a
dataset. The store functions that do those things take an optional `actor` and call `require_admin` before they
write anything; `actor=None` is the local single user (the CLI, `app.prepare`, and the app's typed-name mode on
loopback), who administers their own store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from db.errors import LabelStoreError
from db.validate import identity_problem

ADMIN = "admin"
REVIEWER = "reviewer"
ROLES = (ADMIN, REVIEWER)


class PermissionDeniedError(LabelStoreError, PermissionError):
    """The actor's role does not allow the action; the message names the actor, the role and the action."""


@dataclass(frozen=True)
class Actor:
    """Who is acting: the identity stored with their decisions (an email or a provider subject) and a role."""

    identity: str
    role: str

    def __post_init__(self) -> None:
        if not self.identity or not self.identity.strip():
            raise ValueError("Actor.identity is empty: every action needs a known identity")
        problem = identity_problem(self.identity)
        if problem:  # it is stored with what the actor does (String(200)) and printed in reports
            raise ValueError(f"Actor.identity {problem}")
        if self.role not in ROLES:
            raise ValueError(f"Actor.role {self.role!r} is not one of {', '.join(ROLES)}")

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


# The one person using a store on their own machine: the CLI and the typed-name mode act as this admin.
LOCAL_ADMIN = Actor("local user", ADMIN)


def role_for(identity: str, admins: Iterable[str]) -> str:
    """ADMIN when `identity` is one of `admins` (compared without case or surrounding spaces), else REVIEWER."""
    wanted = identity.strip().casefold()
    return ADMIN if any(wanted == admin.strip().casefold() for admin in admins if admin.strip()) else REVIEWER


def require_admin(actor: Actor | None, action: str) -> Actor:
    """The acting admin, or PermissionDeniedError naming who tried `action` (e.g. "activate a model version")."""
    actor = LOCAL_ADMIN if actor is None else actor
    if not actor.is_admin:
        raise PermissionDeniedError(
            f"{actor.identity} is a {actor.role}: only an admin may {action}. "
            "Ask an admin (admins are listed in the app's [mrelens.roles] configuration)."
        )
    return actor
