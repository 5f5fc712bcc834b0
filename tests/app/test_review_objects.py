"""Review and Inspect show a post's objects from one source (app.ui.explanation_panels.post_objects); Review draws guessed
boxes dotted with labels that can be read, and never says "grounded boxes" when it drew none."""

from __future__ import annotations

from PIL import Image

from app.ui.render import BOX_COLOURS, draw_boxes, image_caption
from tests.app.conftest import no_exceptions


def _provenance(at) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("Objects:")]


def test_review_and_inspect_show_the_same_objects(make_app, seeded_url):
    review = make_app(seeded_url, "views/review.py")
    no_exceptions(review)
    pair = review.session_state["review"].pair_id
    inspect = make_app(seeded_url, "views/inspect.py")
    inspect.number_input(key="inspect_pair").set_value(pair).run()
    no_exceptions(inspect)
    assert _provenance(review) and _provenance(review) == _provenance(inspect)


def _edge(image: Image.Image, y: int, x0: int, x1: int, colour: str) -> list[bool]:
    rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return [image.getpixel((x, y)) == rgb for x in range(x0, x1)]


def test_guessed_boxes_are_dotted_and_stored_ones_solid_with_readable_labels():
    image = Image.new("RGB", (400, 300), (255, 255, 255))
    drawn = draw_boxes(image, [((20, 100, 180, 280), "dog", False), ((220, 100, 380, 280), "cat?", True)])
    solid = _edge(drawn, 280, 40, 160, BOX_COLOURS[0])
    dotted = _edge(drawn, 280, 240, 360, BOX_COLOURS[1])
    assert all(solid), "a stored box is drawn solid"
    assert 0.3 < sum(dotted) / len(dotted) < 0.8, "a guessed box is drawn dotted"
    # the label sits on a filled band of the box's colour, tall enough to read (old: 11 px text, no band)
    band = [y for y in range(60, 100) if all(_edge(drawn, y, 21, 23, BOX_COLOURS[0]))]
    assert len(band) >= 14, band


def test_the_image_caption_says_what_was_drawn():
    assert image_caption([]) == "the post's image (no object boxes to draw)"
    assert "grounded" not in image_caption([]) and "grounded" not in image_caption(["cam-fallback"])
    assert image_caption(["cam-fallback", "cam-fallback"]) == "the post's image with 2 guessed boxes (dotted)"
    assert image_caption(["groundingdino"]) == "the post's image with 1 grounded box"
