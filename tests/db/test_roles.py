"""Admin matching compares identities with PRECIS (RFC 8265 UsernameCaseMapped, emails split at the last "@"),
refuses identities that are not in their normal form or mix look-alike scripts, and honours (issuer, claim, value)
admin entries. Each test fails if matching goes back to plain equality or to casefold()."""

from __future__ import annotations

import pytest

from db.roles import ADMIN, REVIEWER, AdminRule, IdentityError, admin_rules, identity_key, role_for


def test_case_does_not_matter_for_an_email():
    # fails if matching is made case-sensitive
    assert role_for("ALICE@Example.ORG", ["alice@example.org"]) == ADMIN
    assert role_for(" alice@example.org ", ["Alice@EXAMPLE.org"]) == ADMIN
    assert identity_key("Alice@Example.org") == "alice@example.org"


@pytest.mark.parametrize(
    ("identity", "admin"),
    [
        ("\u017fam@example.org", "sam@example.org"),  # long s: casefold() makes it "s"
        ("\u212aate@example.org", "kate@example.org"),  # Kelvin sign: casefold() makes it "k"
        ("stra\u00dfe@example.org", "strasse@example.org"),  # sharp s: casefold() makes it "ss"
        ("s\u0430m@example.org", "sam@example.org"),  # Cyrillic a in a Latin name
        ("\uff53\uff41\uff4d@example.org", "sam@example.org"),  # fullwidth letters
        ("sam@ex\u0430mple.org", "sam@example.org"),  # Cyrillic a in the domain
    ],
)
def test_look_alikes_are_never_an_admin(identity, admin):
    # fails if matching goes back to casefold() (the first three) or to a normalisation that folds them
    assert role_for(identity, [admin]) == REVIEWER


@pytest.mark.parametrize(
    "identity",
    [
        "\u017fam@example.org",
        "\u212aate@example.org",
        "s\u0430m@example.org",
        "\uff53am@example.org",
        "a b@c.d",
    ],
)
def test_identities_not_in_normal_form_or_mixing_scripts_are_refused(identity):
    with pytest.raises(IdentityError):
        identity_key(identity)


def test_sharp_s_is_its_own_letter():
    assert identity_key("Stra\u00dfe@example.org") == "stra\u00dfe@example.org"
    assert role_for("stra\u00dfe@example.org", ["STRA\u00dfE@example.org"]) == ADMIN


def test_a_subject_is_compared_exactly_and_never_as_an_email():
    assert (
        role_for("u-42", [{"issuer": "https://idp", "claim": "sub", "value": "u-42"}], "sub", "https://idp")
        == ADMIN
    )
    assert (
        role_for("U-42", [{"issuer": "https://idp", "claim": "sub", "value": "u-42"}], "sub", "https://idp")
        == REVIEWER
    )
    # an identity whose only claim is a subject equal to an admin's email is not that admin
    assert role_for("admin@example.org", ["admin@example.org"], claim="sub") == REVIEWER


def test_admin_triples_name_the_issuer_and_the_claim():
    rules = admin_rules([{"issuer": "https://corp.example", "claim": "email", "value": "ann@example.org"}])
    assert rules == [AdminRule("https://corp.example", "email", "ann@example.org")]
    assert role_for("ann@example.org", rules, "email", "https://corp.example") == ADMIN
    assert role_for("ann@example.org", rules, "email", "https://partner.example") == REVIEWER
    assert role_for("ann@example.org", rules, "email", None) == REVIEWER
    # the old form, a plain string: an email from any provider, never a subject
    assert admin_rules(["bob@example.org"]) == [AdminRule(None, "email", "bob@example.org")]
    assert admin_rules(["u-7"]) == [AdminRule(None, "sub", "u-7")]
    with pytest.raises(ValueError, match="issuer"):
        admin_rules([{"claim": "email", "value": "x@y.z"}])
    with pytest.raises(ValueError, match="claim"):
        admin_rules([{"issuer": "https://i", "claim": "name", "value": "x"}])
