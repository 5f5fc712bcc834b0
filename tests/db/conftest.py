"""Fixtures for the label store tests: every database test runs on SQLite and, when TEST_POSTGRES_URL is set
(CI sets it), on PostgreSQL too, each test in its own schema. `mnre_root` comes from tests/conftest.py."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db.schema import open_database

LABELS = {"None": 0, "/per/per/peer": 1, "/per/org/member_of": 2, "/loc/loc/contain": 3}


def _postgres_schema_url(base_url: str, schema: str) -> str:
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base_url = os.environ.get("TEST_POSTGRES_URL")
    if not base_url:
        pytest.skip("TEST_POSTGRES_URL is not set (.ci/services/postgres.sh sets it)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _postgres_schema_url(base_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def store(db_url):
    """(engine, sessionmaker) of a fresh database at the latest revision."""
    engine, sessions = open_database(db_url)
    yield engine, sessions
    engine.dispose()


@pytest.fixture
def sessions(store):
    return store[1]


def record_line(tokens, head, tail, relation, img_id="img1.jpg") -> str:
    raw = {
        "token": tokens,
        "h": {"name": " ".join(tokens[head[0] : head[1]]), "pos": list(head)},
        "t": {"name": " ".join(tokens[tail[0] : tail[1]]), "pos": list(tail)},
        "img_id": img_id,
        "relation": relation,
    }
    return repr(raw)


MINI_TRAIN = [
    record_line(["Obama", "meets", "Merkel", "in", "Berlin"], (0, 1), (2, 3), "/per/per/peer", "img1.jpg"),
    record_line(["Obama", "meets", "Merkel", "in", "Berlin"], (2, 3), (4, 5), "None", "img1.jpg"),
    record_line(["Messi", "joins", "Inter", "Miami"], (0, 1), (2, 4), "/per/org/member_of", "img2.jpg"),
    record_line(["Paris", "is", "in", "France"], (3, 4), (0, 1), "/loc/loc/contain", "img3.jpg"),
    record_line(["RT", "@user", ":", "Lakers", "win"], (3, 4), (1, 2), "None", "img4.jpg"),
]
MINI_VAL = [
    record_line(["Ronaldo", "and", "Benzema", "at", "Madrid"], (0, 1), (2, 3), "/per/per/peer", "img9.jpg"),
    record_line(["Berlin", "in", "Germany"], (2, 3), (0, 1), "None", "img8.jpg"),
]


def write_mini_mnre(root: Path, train: list[str] = MINI_TRAIN, val: list[str] = MINI_VAL) -> Path:
    """A tiny MNRE folder: 5 train + 2 val records, one real image (img1.jpg) and one crop for train line 1."""
    import torch
    from PIL import Image

    (root / "txt").mkdir(parents=True)
    (root / "ours_rel2id.json").write_text(json.dumps(LABELS), encoding="utf-8")
    (root / "txt" / "ours_train.txt").write_text("".join(line + "\n" for line in train), encoding="utf-8")
    (root / "txt" / "ours_val.txt").write_text("".join(line + "\n" for line in val), encoding="utf-8")
    (root / "img_org" / "train").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "img_org" / "train" / "img1.jpg")
    (root / "img_vg" / "train" / "crops").mkdir(parents=True)
    Image.new("RGB", (8, 8), (0, 200, 0)).save(root / "img_vg" / "train" / "crops" / "img1_crop0.png")
    torch.save({0: ["img1_crop0.png"], 1: ["img1_crop0.png"]}, root / "txt" / "mre_train_dict.pth")
    return root


@pytest.fixture
def mini_mnre(tmp_path) -> Path:
    return write_mini_mnre(tmp_path / "mnre")
