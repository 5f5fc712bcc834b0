"""The Queue says what it holds: its filters come back as they were after a visit to another page (not the
placeholder "Choose an option" over an unfiltered queue), an image-reliance sort with nothing to sort by says so and
why, a missing value is a dash (never "None", one of MNRE's relations), and the status column is not the one a
1600 px window cuts off. Each test failed on the code before it."""

from __future__ import annotations

import json

from sqlalchemy import update

from db.models import ModelVersion
from db.schema import open_database
from tests.app.conftest import no_exceptions

PLACEHOLDER = "Choose an option"


def shown(selectbox) -> str:
    """What a selectbox shows: the option set in this run, its default option, or the placeholder."""
    proto = selectbox.proto
    if proto.set_value:
        return proto.raw_value if proto.HasField("raw_value") else PLACEHOLDER
    return proto.options[proto.default] if proto.HasField("default") else PLACEHOLDER


def test_filters_come_back_as_they_were_after_another_page(make_app, seeded_url):
    at = make_app(seeded_url)
    no_exceptions(at)
    gold = at.selectbox(key="queue_gold").options[1]
    at.selectbox(key="queue_gold").set_value(gold).run()
    at.selectbox(key="queue_sort").set_value("source_order").run()
    before = at.dataframe(key="queue_table").value["pair"].tolist()
    at.switch_page("views/export.py").run()
    at.switch_page("views/queue.py").run()
    no_exceptions(at)
    assert shown(at.selectbox(key="queue_dataset")) == "all"
    assert shown(at.selectbox(key="queue_split")) == "val"
    assert shown(at.selectbox(key="queue_gold")) == gold
    assert shown(at.selectbox(key="queue_status")) == "all"
    assert at.selectbox(key="queue_sort").value == "source_order"
    assert at.dataframe(key="queue_table").value["pair"].tolist() == before, "the same filtered queue"


def test_an_image_reliance_sort_with_nothing_to_sort_by_says_why(make_app, seeded_url):
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        session.execute(update(ModelVersion).values(variant="text_only"))
    engine.dispose()
    at = make_app(seeded_url)
    at.toggle(key="queue_more_columns").set_value(True).run()
    at.selectbox(key="queue_sort").set_value("image_reliance").run()
    no_exceptions(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "no pair shown has one" in warnings and "text-only" in warnings, warnings
    table = at.dataframe(key="queue_table")
    assert "image reliance" not in list(table.proto.column_order), "an all-empty column is not shown"


def test_missing_values_are_a_dash_and_the_status_fits_at_1600_px(make_app, seeded_url):
    at = make_app(seeded_url)
    table = at.dataframe(key="queue_table").proto
    assert table.placeholder == "\u2014", "Streamlit draws a missing value as 'None' unless told otherwise"
    order = list(table.column_order)
    assert order.index("status") <= 2, order
    config = json.loads(table.columns)
    # a probability in percent, as Review and Inspect write it
    assert config["confidence"]["type_config"]["format"] == "%.1f%%", config["confidence"]
    widths = [config[column]["width"] for column in order]
    # a 1600 px window in the wide layout leaves about 1,100 px beside the sidebar
    assert all(isinstance(width, int) for width in widths) and sum(widths) <= 1100, dict(
        zip(order, widths, strict=True)
    )


def test_pairs_without_an_image_say_so_instead_of_that_reliance_was_computed_elsewhere():
    from types import SimpleNamespace

    from app.services.queue_view import missing_reliance_reason
    from db.review_queue import RelianceSource

    source = RelianceSource(key=1, version_id="v-objects", pairs=12)
    no_image = [SimpleNamespace(image_reliance=None, has_image=False) for _ in range(3)]
    assert "no post shown has an image" in missing_reliance_reason(no_image, source, None)
    with_image = no_image + [SimpleNamespace(image_reliance=None, has_image=True)]
    assert missing_reliance_reason(with_image, source, None) == "v-objects computed it for other pairs only"
    measured = with_image + [SimpleNamespace(image_reliance=0.2, has_image=True)]
    assert missing_reliance_reason(measured, source, None) is None


def test_the_reliance_source_counts_pairs_of_posts_with_an_image_in_words():
    from app.services.queue_view import reliance_source_text
    from db.review_queue import RelianceSource

    text = reliance_source_text(RelianceSource(key=1, version_id="v-objects", pairs=1204), None)
    assert text == (
        "Image reliance as computed by v-objects (not the active model; 1,204 pairs of posts with an image so far; "
        "blank for a post without one)."
    )
