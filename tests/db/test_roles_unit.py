"""db.roles on its own, fast: who is an admin (case-insensitive email, exact subject, the entry's issuer and claim),
who may act as one (require_admin) and what an Actor may be. Each test names the small break it catches."""

from __future__ import annotations

import pytest

from db.roles import (
    ADMIN,
    LOCAL_ADMIN,
    REVIEWER,
    Actor,
    AdminRule,
    PermissionDeniedError,
    admin_rules,
    require_admin,
    role_for,
)

CORP = "https://corp.example"


@pytest.mark.parametrize(
    ("identity", "entry"),
    [
        ("Ann@Example.org", "ann@example.org"),  # local part and domain in other case
        ("ann@example.org", "ANN@EXAMPLE.ORG"),  # the entry in upper case
        ("  ann@example.org", "ann@example.org  "),  # surrounding blanks on either side
    ],
)
def test_an_admin_email_matches_whatever_its_case(identity, entry):
    # red when matching is made case-sensitive (or blanks are kept)
    assert role_for(identity, [entry]) == ADMIN


@pytest.mark.parametrize(
    ("identity", "claim", "issuer", "expected"),
    [
        ("ann@example.org", "email", CORP, ADMIN),
        ("ann@example.org", "email", "https://other.example", REVIEWER),  # red when the issuer is ignored
        ("ann@example.org", "sub", CORP, REVIEWER),  # red when the claim is ignored
        ("ann@example.org.evil", "email", CORP, REVIEWER),  # red when the value is matched by prefix
        ("nn@example.org", "email", CORP, REVIEWER),  # red when the value is matched by suffix
    ],
)
def test_an_entry_matches_only_its_issuer_claim_and_value(identity, claim, issuer, expected):
    entry = {"issuer": CORP, "claim": "email", "value": "ann@example.org"}
    assert role_for(identity, [entry], claim, issuer) == expected


def test_any_issuer_and_several_entries():
    entries = [
        {"issuer": CORP, "claim": "sub", "value": "u-1"},
        {"issuer": "*", "claim": "email", "value": "bob@example.org"},
    ]
    assert admin_rules(entries)[1] == AdminRule(None, "email", "bob@example.org")
    assert role_for("bob@example.org", entries, "email", "https://any.example") == ADMIN  # the second entry
    assert role_for("u-1", entries, "sub", CORP) == ADMIN
    assert role_for("U-1", entries, "sub", CORP) == REVIEWER  # a subject is compared exactly
    assert role_for("u-1", entries, "sub", "https://any.example") == REVIEWER
    assert role_for("carol@example.org", entries, "email", CORP) == REVIEWER
    assert role_for("bob@example.org", [], "email", CORP) == REVIEWER  # no entry, no admin


def test_require_admin_refuses_a_reviewer_and_names_them_and_the_action():
    reviewer = Actor("rev@example.org", REVIEWER)
    with pytest.raises(
        PermissionDeniedError, match=r"rev@example.org is a reviewer: only an admin may retrain"
    ):
        require_admin(reviewer, "retrain")
    admin = Actor("ann@example.org", ADMIN)
    assert require_admin(admin, "retrain") is admin
    assert require_admin(None, "retrain") is LOCAL_ADMIN and LOCAL_ADMIN.is_admin
    assert not reviewer.is_admin


@pytest.mark.parametrize(("identity", "role"), [("", ADMIN), ("   ", REVIEWER), ("ann", "owner")])
def test_an_actor_needs_an_identity_and_a_known_role(identity, role):
    with pytest.raises(ValueError, match="Actor"):
        Actor(identity, role)
