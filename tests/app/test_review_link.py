"""Review that survives a reload: the pair and the Queue's filter live in the URL (st.query_params), written when they
change and read by a new session; a hostile link is said and ignored, never a crash; undo after a reload takes back
the reviewer's own last decision from the store's history; an admin bulk-accepts the Queue's filter with one undo."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.services.review_link import parse_link
from app.ui.identity import cookie_script
from db.models import Annotation, EntityPair
from db.schema import open_database
from tests.app.conftest import MAIN, REVIEWER, no_exceptions
from tests.app.test_login import oidc_app  # noqa: F401  (a fixture)

REVIEW, QUEUE = "views/review.py", "views/queue.py"


def new_session(url: str, monkeypatch, page: str, params: dict[str, str]) -> AppTest:
    """A new browser session opened on `page` with this URL query (what a reload or a shared link starts)."""
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.session_state["reviewer"] = REVIEWER
    at.query_params.update(params)
    at.switch_page(page).run()
    no_exceptions(at)
    return at


def rows(url: str, *columns) -> list[tuple]:
    engine, sessions = open_database(url)
    with sessions() as session:
        result = [tuple(row) for row in session.execute(select(*columns).order_by(Annotation.id))]
    engine.dispose()
    return result


def pair_ids(url: str, split: str | None = None) -> list[int]:
    engine, sessions = open_database(url)
    with sessions() as session:
        stmt = select(EntityPair.id).order_by(EntityPair.id)
        if split:
            stmt = stmt.where(EntityPair.split == split)
        ids = list(session.scalars(stmt))
    engine.dispose()
    return ids


def shown(at: AppTest) -> int:
    return at.session_state["review_shown"][0]


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def test_the_queue_writes_its_filter_and_a_new_session_reads_it_back(make_app, seeded_url, monkeypatch):
    at = make_app(seeded_url, QUEUE)
    at.selectbox(key="queue_status").select("unreviewed").run()
    at.selectbox(key="queue_sort").select("source_order").run()
    at.text_input(key="queue_text").input("a").run()
    no_exceptions(at)
    params = dict(at.query_params)
    assert params["status"] == ["unreviewed"] or params["status"] == "unreviewed", params
    link = parse_link(params)
    assert link.filters["status"] == "unreviewed" and link.filters["sort"] == "source_order"
    assert link.filters["text"] == "a" and not link.problems
    reloaded = new_session(
        seeded_url, monkeypatch, QUEUE, {k: v[-1] if isinstance(v, list) else v for k, v in params.items()}
    )
    kept = reloaded.session_state["queue_filters"]
    assert (kept.status, kept.sort, kept.text, kept.split) == ("unreviewed", "source_order", "a", "val")
    assert reloaded.selectbox(key="queue_status").value == "unreviewed"


def test_review_writes_its_pair_and_a_reload_opens_the_same_pair_in_the_same_queue(
    make_app, seeded_url, monkeypatch
):
    # the Queue is the default page (a page pinned by switch_page would stay pinned)
    at = make_app(seeded_url)
    at.selectbox(key="queue_sort").select("source_order").run()
    at.button(key="queue_start").click().run()
    at.button(key="review_next").click().run()
    at.button(key="review_next").click().run()
    no_exceptions(at)
    third = shown(at)
    params = {k: v[-1] if isinstance(v, list) else v for k, v in dict(at.query_params).items()}
    assert params["pair"] == str(third) and params["sort"] == "source_order" and params["split"] == "val"
    assert "reviewer" not in params and REVIEWER not in params.values(), "the identity never goes in the URL"
    reloaded = new_session(seeded_url, monkeypatch, REVIEW, params)
    assert shown(reloaded) == third
    review = reloaded.session_state["review"]
    assert review.queue == pair_ids(seeded_url, "val")[: len(review.queue)] and review.position == 2
    assert reloaded.session_state["queue_filters"].sort == "source_order"
    assert not [w for w in warnings(reloaded) if "link" in w]


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"pair": "abc"}, "'abc' is not a pair id"),
        ({"pair": "-3"}, "'-3' is not a pair id"),
        ({"pair": "0x10"}, "'0x10' is not a pair id"),
        ({"pair": "99999999999999999999999"}, "is not a pair id"),
        ({"pair": "999999"}, "pair 999999 is not in the label store"),
        ({"pair": "1", "sort": "entropy", "dataset": "another"}, "not in the link's dataset 'another'"),
        ({"sort": "bogus", "status": "nope"}, "sort 'bogus' is not one of"),
        ({"sort": "entropy", "suspects": "many"}, "suspects 'many' is not a count"),
        ({"sort": "entropy", "text": "a\u0000b"}, "control or format character"),
        ({"sort": "entropy", "gold": "x" * 500}, "500 characters long"),
    ],
)
def test_a_hostile_link_is_said_and_review_starts_at_the_queues_first_pair(
    seeded_url, monkeypatch, params, said
):
    at = new_session(seeded_url, monkeypatch, REVIEW, params)
    assert any(said in w and "Parts of this link were not used" in w for w in warnings(at)), warnings(at)
    if "pair" in params:
        assert any("Review starts at the first pair" in w for w in warnings(at))
    assert at.session_state["review"].position == 0
    assert rows(seeded_url, Annotation.id) == [], "a link changes nothing in the store"


def test_undo_after_a_reload_takes_back_the_reviewers_own_last_decision(make_app, seeded_url, monkeypatch):
    at = make_app(seeded_url, REVIEW)
    first = shown(at)
    at.button(key="review_reject").click().run()
    second = shown(at)
    at.button(key="review_skip").click().run()
    params = {k: v[-1] if isinstance(v, list) else v for k, v in dict(at.query_params).items()}
    # another reviewer decides the second pair after us: it is theirs now, not ours to undo
    engine, sessions = open_database(seeded_url)
    from app.services.store import decide

    decide(sessions, second, "rejected", "other", 1)
    engine.dispose()
    reloaded = new_session(seeded_url, monkeypatch, REVIEW, params)
    assert not reloaded.button(key="review_undo").disabled, "the store remembers what the reviewer decided"
    reloaded.button(key="review_undo").click().run()
    no_exceptions(reloaded)
    assert shown(reloaded) == first, "undo opens the pair it changed"
    assert rows(seeded_url, Annotation.pair_id, Annotation.annotator, Annotation.status) == [
        (first, REVIEWER, "rejected"),
        (second, REVIEWER, "skipped"),
        (second, "other", "rejected"),
        (first, REVIEWER, "unreviewed"),
    ]


def test_an_admin_bulk_accepts_the_filter_after_confirming_and_undoes_it_once(make_app, seeded_url):
    at = make_app(seeded_url, QUEUE)  # typed-name mode: the one local user is the admin
    at.selectbox(key="queue_status").select("unreviewed").run()
    at.toggle(key="queue_bulk_count").set_value(True).run()
    no_exceptions(at)
    val = pair_ids(seeded_url, "val")
    assert any(f"**{len(val)} pairs**" in m.value for m in at.markdown)
    assert at.button(key="queue_bulk_accept").disabled, "nothing is accepted before the confirmation"
    at.checkbox(key="queue_bulk_confirm").check().run()
    at.button(key="queue_bulk_accept").click().run()
    no_exceptions(at)
    assert any(f"Accepted {len(val)} pairs" in s.value for s in at.success), [s.value for s in at.success]
    accepted = rows(seeded_url, Annotation.pair_id, Annotation.status, Annotation.origin)
    assert sorted(r[0] for r in accepted) == val and {r[1] for r in accepted} == {"accepted"}
    assert len({r[2] for r in accepted}) == 1 and accepted[0][2].startswith("bulk:")
    at.button(key="queue_bulk_undo").click().run()
    no_exceptions(at)
    assert [r[1] for r in rows(seeded_url, Annotation.pair_id, Annotation.status)] == ["accepted"] * len(
        val
    ) + ["unreviewed"] * len(val)
    assert not [b for b in at.button if b.key == "queue_bulk_undo"], "one undo per batch"


def test_a_reviewer_sees_no_bulk_accept(oidc_app, seeded_url):  # noqa: F811
    at = oidc_app(seeded_url, {"email": "rev@example.org", "email_verified": True}, QUEUE)
    no_exceptions(at)
    assert not [t for t in at.toggle if t.key == "queue_bulk_count"]


def test_the_typed_name_cookie_script_cannot_be_broken_out_of():
    script = cookie_script('Ann</script><img src=x onerror=alert(1)>"')
    assert script.count("<script>") == 1 and script.count("</script>") == 1
    assert "<img" not in script and '\\"' in script
    assert "max-age=0" in cookie_script("")
