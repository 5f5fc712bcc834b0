"""The data-chosen default recipe at its threshold (app.services.model_jobs.default_recipe): `objects` only when MORE
than half of the dataset's posts have an image; exactly half, or fewer, is `text_only`."""

from __future__ import annotations

import pytest
from PIL import Image

from app.services.model_jobs import default_recipe
from db.io import import_mnre
from db.schema import open_database
from tests.db.conftest import write_mini_mnre

# the mini MNRE folder has 6 posts (4 train, 2 val) and only img1.jpg on disk; these are the other train posts' images
OTHER_TRAIN_IMAGES = ("img2.jpg", "img3.jpg", "img4.jpg")


@pytest.mark.parametrize(
    ("extra_images", "variant", "with_image"),
    [(0, "text_only", 1), (2, "text_only", 3), (3, "objects", 4)],
)
def test_the_default_recipe_reads_the_image_only_when_most_posts_have_one(
    tmp_path, extra_images, variant, with_image
):
    root = write_mini_mnre(tmp_path / "mnre")
    for name in OTHER_TRAIN_IMAGES[:extra_images]:
        Image.new("RGB", (40, 30), (10, 200, 10)).save(root / "img_org" / "train" / name)
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    with sessions.begin() as session:
        import_mnre(session, root, dataset="team")
    with sessions() as session:
        recipe = default_recipe(session, "team")
    engine.dispose()
    assert (recipe.variant, recipe.with_image, recipe.posts) == (variant, with_image, 6)
