"""Who may change what in the label store.

Everyone who is logged in is a reviewer: they review, add posts and export. Only an admin activates a model
version, starts a retraining (or another job that registers or activates models) and deletes or (re-)imports a
dataset. The store functions that do those things take an optional `actor` and call `require_admin` before they
write anything; `actor=None` is the local single user (the CLI, `app.services.prepare`, and the app's typed-name mode on
loopback), who administers their own store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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


class IdentityError(ValueError):
    """An identity that cannot be compared safely: not valid or not in its normal form under RFC 8265, or mixing a
    script with look-alike letters of another (Cyrillic "а" in a Latin name)."""


# claims an admin entry may name: the provider's verified email, or its subject
ADMIN_CLAIMS = ("email", "sub")
# scripts whose letters are commonly mistaken for one another; an identity mixing one of them with another script,
# with letters that have look-alikes, is refused (Japanese mixing Han and kana is fine)
LOOK_ALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC"})


def _precis_part(part: str, whole: str) -> str:
    """One part of an identity through RFC 8265: it must already be in UsernameCasePreserved form (so a Kelvin
    sign, a long s, fullwidth or ligature letters are refused, not folded into the letter they resemble), and
    its comparison key is the UsernameCaseMapped form (lower case, NFC)."""
    from precis_i18n import get_profile

    try:
        preserved = get_profile("UsernameCasePreserved").enforce(part)
    except UnicodeError as err:
        reason = getattr(err, "reason", str(err))
        raise IdentityError(f"{whole!r} is not a valid identity (RFC 8265: {reason})") from err
    if preserved != part:
        raise IdentityError(
            f"{whole!r} is not in its normal form (RFC 8265): it holds a width, compatibility or composed variant "
            "of a letter"
        )
    return get_profile("UsernameCaseMapped").enforce(part)


def _check_scripts(value: str) -> None:
    from confusable_homoglyphs import categories, confusables

    scripts = {categories.alias(char) for char in value} - {"COMMON", "INHERITED"}
    if len(scripts) > 1 and scripts & LOOK_ALIKE_SCRIPTS and confusables.is_dangerous(value):
        raise IdentityError(
            f"{value!r} mixes the scripts {', '.join(sorted(scripts))} with letters that look alike; refused"
        )


def identity_key(value: str, claim: str = "email") -> str:
    """What two identities are compared by. An email (or a name): split at its last "@", each part through RFC 8265
    (PRECIS UsernameCaseMapped, after checking it is already in UsernameCasePreserved form), so case does not
    matter but look-alike letters do; a subject (`claim` "sub") is compared exactly, as OpenID Connect says.
    Raises IdentityError for an identity that cannot be compared safely (see IdentityError)."""
    value = value.strip()
    if not value:
        raise IdentityError("the identity is empty")
    problem = identity_problem(value)
    if problem:
        raise IdentityError(f"identity {problem}")
    if claim == "sub":
        return value
    _check_scripts(value)
    local, at, domain = value.rpartition("@")
    if not at:
        return _precis_part(value, value)
    if not local or not domain:
        raise IdentityError(f"{value!r} is not an email address (nothing before or after '@')")
    return f"{_precis_part(local, value)}@{_precis_part(domain, value)}"


@dataclass(frozen=True)
class AdminRule:
    """An admin: the provider (`issuer`, its `iss`; None = any configured provider), the claim that vouches for
    them ("email": a verified email; "sub": the subject) and its value."""

    issuer: str | None
    claim: str
    value: str


def admin_rules(entries: Iterable[Any]) -> list[AdminRule]:
    """Admin entries as configured: a table {issuer, claim, value} (issuer "*" = any provider), or the older plain
    string, read as the verified `email` claim from any provider when it holds an "@", else as a subject from any
    provider. Raises ValueError naming what is wrong."""
    rules = []
    for entry in entries:
        if isinstance(entry, str):
            if entry.strip():
                value = entry.strip()
                rules.append(AdminRule(None, "email" if "@" in value else "sub", value))
            continue
        if not isinstance(entry, Mapping):
            raise ValueError(f"admin entry {entry!r} must be a string or a table {{issuer, claim, value}}")
        issuer, claim, value = entry.get("issuer"), entry.get("claim"), entry.get("value")
        if not isinstance(issuer, str) or not issuer.strip():
            raise ValueError(
                f'admin entry {dict(entry)!r} needs an issuer (the provider\'s iss, or "*" for any)'
            )
        if claim not in ADMIN_CLAIMS:
            raise ValueError(f"admin entry {dict(entry)!r}: claim must be one of {', '.join(ADMIN_CLAIMS)}")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"admin entry {dict(entry)!r} needs a value")
        rules.append(AdminRule(None if issuer.strip() == "*" else issuer.strip(), claim, value.strip()))
    return rules


def role_for(identity: str, admins: Iterable[Any], claim: str = "email", issuer: str | None = None) -> str:
    """ADMIN when the identity the provider `issuer` vouches for through `claim` matches an admin entry
    (admin_rules: same claim, same issuer unless the entry says any, equal identity_key), else REVIEWER. An
    identity that cannot be compared safely (IdentityError) is never an admin."""
    rules = [rule if isinstance(rule, AdminRule) else admin_rules([rule]) for rule in admins]
    flat = [r for rule in rules for r in (rule if isinstance(rule, list) else [rule])]
    try:
        key = identity_key(identity, claim)
    except IdentityError:
        return REVIEWER
    for rule in flat:
        if rule.claim != claim or (rule.issuer is not None and rule.issuer != issuer):
            continue
        try:
            if identity_key(rule.value, rule.claim) == key:
                return ADMIN
        except IdentityError:
            continue  # an admin entry that cannot be compared safely matches nobody
    return REVIEWER


def require_admin(actor: Actor | None, action: str) -> Actor:
    """The acting admin, or PermissionDeniedError naming who tried `action` (e.g. "activate a model version")."""
    actor = LOCAL_ADMIN if actor is None else actor
    if not actor.is_admin:
        raise PermissionDeniedError(
            f"{actor.identity} is a {actor.role}: only an admin may {action}. "
            "Ask an admin (admins are listed in the app's [mrelens.roles] configuration)."
        )
    return actor
