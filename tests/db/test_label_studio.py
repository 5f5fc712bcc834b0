"""Label Studio: the shipped labeling config, tasks JSON out, Label Studio exports in, and the round trip.

No Label Studio server runs here: the JSON is checked against the documented task format (data / annotations /
predictions; span results with from_name, to_name, type "labels", value.start/end/text/labels; relation results with
from_id, to_id, type "relation", labels).
"""

import copy
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from db.agreement import decisions
from db.annotations import record_annotation, undo_last
from db.cli import main
from db.export_rows import ExportFilter, curated_rows
from db.io import import_mnre
from db.label_studio import CONFIG_PATH, config_relations, export_label_studio, import_label_studio
from db.models import Annotation, EntityPair, Post
from db.provenance import register_model_version, save_predictions, set_active
from db.schema import open_database
from model.mnre_format import DataFormatError
from model.synthetic import MNRE_LABELS

# the control and object tags Label Studio documents for this kind of project (labelstud.io/tags)
DOCUMENTED_TAGS = {
    "View",
    "Header",
    "Image",
    "Text",
    "Labels",
    "Label",
    "Relations",
    "Relation",
    "Choices",
    "Choice",
}
DOCUMENTED_TAGS |= {"TextArea", "RectangleLabels"}


def pair_at(session, split: str, line: int) -> EntityPair:
    return session.scalars(
        select(EntityPair).where(EntityPair.split == split, EntityPair.source_line == line)
    ).one()


def test_config_is_label_studio_xml_with_the_23_mnre_relations():
    root = ET.parse(CONFIG_PATH).getroot()
    assert root.tag == "View" and {el.tag for el in root.iter()} <= DOCUMENTED_TAGS
    assert config_relations() == MNRE_LABELS and len(MNRE_LABELS) == 23
    names = {el.attrib["name"]: el for el in root.iter() if "name" in el.attrib}
    assert names["image"].tag == "Image" and names["image"].attrib["value"] == "$image"
    assert names["text"].tag == "Text" and names["text"].attrib["value"] == "$text"
    spans = names["entity"]
    assert spans.tag == "Labels" and spans.attrib["toName"] == "text"
    assert [label.attrib["value"] for label in spans] == ["head", "tail"]
    assert names["pair"].tag == "Choices" and [c.attrib["value"] for c in names["pair"]] == ["reject pair"]
    assert names["note"].tag == "TextArea" and names["note"].attrib["toName"] == "text"
    evidence, box = names["evidence"], names["evidence_box"]
    assert evidence.tag == "Labels" and evidence.attrib["toName"] == "text"
    assert evidence.attrib["granularity"] == "word" and [label.attrib["value"] for label in evidence] == [
        "evidence"
    ]
    assert box.tag == "RectangleLabels" and box.attrib["toName"] == "image"
    assert [label.attrib["value"] for label in box] == ["evidence"]


@pytest.fixture
def reviewed(sessions, mini_mnre):
    """The mini MNRE store with decisions of every kind by three annotators, an undo and an active model."""
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        p1, p2, p3, p4 = (pair_at(session, "train", n).id for n in (1, 2, 3, 4))
        v2 = pair_at(session, "val", 2).id
        record_annotation(session, p1, status="accepted", annotator="alice", expected_revision=0)
        record_annotation(
            session, p1, status="corrected", label="None", annotator="bob", expected_revision=1, note="no cue"
        )
        record_annotation(
            session, v2, status="rejected", annotator="bob", expected_revision=0, note="bad span"
        )
        record_annotation(
            session, p3, status="skipped", annotator="alice", expected_revision=0, note="unsure"
        )
        record_annotation(
            session, p4, status="corrected", label="/per/per/peer", annotator="carol", expected_revision=0
        )
        record_annotation(
            session, p4, status="corrected", label="/loc/loc/contain", annotator="carol", expected_revision=1
        )
        undo_last(session, p4, annotator="carol", expected_revision=2)
        # a correction to the label the pair already had (gold "None") stays a correction
        record_annotation(
            session, p2, status="corrected", label="None", annotator="dana", expected_revision=0
        )
        # distinct, known times (the store's default is now(), identical to the microsecond on fast machines)
        for k, a in enumerate(session.scalars(select(Annotation).order_by(Annotation.id))):
            a.created_at = t0 + timedelta(minutes=k)
        version = register_model_version(session, "ifaformer-objects-abc123", "/models/x", "objects")
        set_active(session, version.version_id)
        probs = {"None": 0.7, "/per/per/peer": 0.2, "/per/org/member_of": 0.05, "/loc/loc/contain": 0.05}
        save_predictions(session, version.id, [{"pair_id": p1, "probabilities": probs}])
    return {"p1": p1, "p2": p2, "p3": p3, "p4": p4, "v2": v2}


def comparable(session) -> dict[str, dict]:
    """What a round trip must keep, keyed by dataset + source key (pair ids differ between stores)."""
    keys = dict(session.execute(select(EntityPair.id, EntityPair.source_key)).all())
    rows = curated_rows(session)
    rows += [
        r for r in curated_rows(session, ExportFilter(include_rejected=True)) if r["status"] == "rejected"
    ]
    out = {}
    for r in rows:
        out[f"{r['dataset']}/{keys[r['pair_id']]}"] = {
            k: r[k]
            for k in (
                "split",
                "source_line",
                "tokens",
                "head_name",
                "head_start",
                "head_end",
                "tail_name",
                "tail_start",
                "tail_end",
                "img_id",
                "gold_label",
                "label",
                "status",
                "annotator",
                "annotated_at",
                "note",
            )
        }
    by_annotator = {keys[pid]: rated for pid, rated in decisions(session).items()}
    return {"rows": out, "decisions": by_annotator}


def test_export_follows_the_label_studio_task_format(sessions, reviewed, tmp_path):
    out = tmp_path / "tasks.json"
    with sessions() as session:
        report = export_label_studio(session, out)
    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert report.rows == len(tasks) == 7  # the rejected pair is exported too: its rejection is an annotation
    by_key = {t["data"]["mrelens"]["source_key"]: t for t in tasks}
    task = by_key["train:1"]
    assert task["data"]["text"] == "Obama meets Merkel in Berlin"
    assert task["data"]["image"] == "/data/local-files/?d=img1.jpg"
    # one annotation per annotator, with the annotator and the time of the decision
    anns = {a["completed_by"]["email"]: a for a in task["annotations"]}
    assert set(anns) == {"alice", "bob"}
    assert anns["alice"]["created_at"] == "2026-11-01T09:00:00Z"
    spans = {r["id"]: r for r in anns["bob"]["result"] if r["type"] == "labels"}
    relation = next(r for r in anns["bob"]["result"] if r["type"] == "relation")
    assert relation["labels"] == ["None"] and relation["direction"] == "right"
    head, tail = spans[relation["from_id"]], spans[relation["to_id"]]
    assert (head["from_name"], head["to_name"]) == ("entity", "text")
    assert head["value"] == {"start": 0, "end": 5, "text": "Obama", "labels": ["head"]}
    assert tail["value"] == {"start": 12, "end": 18, "text": "Merkel", "labels": ["tail"]}
    note = next(r for r in anns["bob"]["result"] if r["type"] == "textarea")
    assert note["value"]["text"] == ["no cue"]
    # the active model's output as a prediction with its version and score
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == "ifaformer-objects-abc123" and prediction["score"] == pytest.approx(
        0.7
    )
    assert next(r for r in prediction["result"] if r["type"] == "relation")["labels"] == ["None"]
    # a skip is was_cancelled; a rejection is the "reject pair" choice with no relation label
    (skip,) = by_key["train:3"]["annotations"]
    assert skip["was_cancelled"] is True
    (reject,) = by_key["val:2"]["annotations"]
    assert {
        "type": "choices",
        "from_name": "pair",
        "to_name": "text",
        "value": {"choices": ["reject pair"]},
    } in [
        {k: r[k] for k in ("type", "from_name", "to_name", "value")} for r in reject["result"] if "value" in r
    ]
    # carol's second correction was undone: her decision in effect is the first one
    (carol,) = by_key["train:4"]["annotations"]
    assert next(r for r in carol["result"] if r["type"] == "relation")["labels"] == ["/per/per/peer"]
    assert by_key["train:5"]["annotations"] == []


def test_round_trip_keeps_every_label_span_and_annotator(sessions, reviewed, tmp_path):
    out = tmp_path / "tasks.json"
    with sessions() as session:
        export_label_studio(session, out)
        before = comparable(session)
    engine, fresh = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with fresh.begin() as session:
            report = import_label_studio(session, out)
        assert (report.new_pairs, report.new_posts, report.stale) == (7, 6, [])
        with fresh() as session:
            after = comparable(session)
        for key in before["rows"]:
            assert after["rows"].get(key) == before["rows"][key], key
        assert after == before
        assert before["decisions"]["train:1"] == {"alice": "/per/per/peer", "bob": "None"}
        # the second import of the same file changes nothing
        with fresh.begin() as session:
            again = import_label_studio(session, out)
        assert (again.new_pairs, again.decisions_added, again.existing_pairs) == (0, 0, 7)
        with fresh() as session:
            assert comparable(session) == before
            export_label_studio(session, tmp_path / "again.json")
    finally:
        engine.dispose()
    first, second = (json.loads((tmp_path / n).read_text()) for n in ("tasks.json", "again.json"))
    for task in first + second:  # store-local ids and paths differ; everything else must match
        task["data"]["mrelens"]["pair_id"] = None
        task["data"]["mrelens"]["image_path"] = None
        for item in task["annotations"] + task["predictions"]:
            for result in item["result"]:
                for key in ("id", "from_id", "to_id"):
                    result.pop(key, None)
    assert second == [{**t, "predictions": []} for t in first]  # the fresh store has no model


def test_importing_the_export_into_its_own_store_adds_nothing(sessions, reviewed, tmp_path):
    out = tmp_path / "tasks.json"
    with sessions() as session:
        export_label_studio(session, out)
        n_annotations = session.scalar(select(func.count()).select_from(Annotation))
    with sessions.begin() as session:
        report = import_label_studio(session, out)
    assert (report.new_pairs, report.new_posts, report.decisions_added) == (0, 0, 0)
    assert report.decisions_present == 6 and report.existing_pairs == 7
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Annotation)) == n_annotations


def ls_task(text="Messi  joins Inter Miami", when="2026-11-02T10:00:00.123456Z", **ann) -> dict:
    """A task the way Label Studio exports it: no MRE Lens block, completed_by a user id, char offsets."""
    return {
        "id": 41,
        "data": {"text": text, "image": "/data/local-files/?d=photos/messi.jpg"},
        "annotations": [
            {
                "id": 7,
                "completed_by": 3,
                "was_cancelled": False,
                "created_at": when,
                "updated_at": when,
                "result": [
                    {
                        "id": "a1",
                        "from_name": "entity",
                        "to_name": "text",
                        "type": "labels",
                        "value": {"start": 0, "end": 5, "text": "Messi", "labels": ["head"]},
                    },
                    {
                        "id": "a2",
                        "from_name": "entity",
                        "to_name": "text",
                        "type": "labels",
                        "value": {"start": 13, "end": 24, "text": "Inter Miami", "labels": ["tail"]},
                    },
                    {
                        "from_id": "a1",
                        "to_id": "a2",
                        "type": "relation",
                        "direction": "right",
                        "labels": ["/per/org/member_of"],
                    },
                ],
                **ann,
            }
        ],
        "predictions": [],
    }


def test_a_label_studio_project_export_becomes_posts_pairs_and_decisions(sessions, tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(tmp_path / "imgs" / "messi.jpg")
    path = tmp_path / "project.json"
    later = ls_task(when="2026-11-03T10:00:00Z")
    later["annotations"][0]["completed_by"] = {"id": 9, "email": "dana@example.org"}
    later["annotations"][0]["result"][2]["labels"] = ["None"]
    later["annotations"][0]["result"][2].update(from_id="a2", to_id="a1", direction="left")
    path.write_text(json.dumps([ls_task(), later]))
    with sessions.begin() as session:
        report = import_label_studio(session, path, images_dir=tmp_path / "imgs")
    assert (report.new_posts, report.new_pairs, report.decisions_added) == (1, 1, 2)
    with sessions() as session:
        post = session.scalars(select(Post)).one()
        assert (
            post.tokens == ["Messi", "joins", "Inter", "Miami"]
            and post.has_image
            and post.img_id == "messi.jpg"
        )
        pair = session.scalars(select(EntityPair)).one()
        assert (pair.head_start, pair.head_end, pair.tail_start, pair.tail_end) == (0, 1, 2, 4)
        assert (pair.split, pair.gold_label) == ("labelstudio", None)
        history = list(session.scalars(select(Annotation).order_by(Annotation.revision)))
        assert [(a.annotator, a.status, a.label) for a in history] == [
            ("labelstudio-user-3", "corrected", "/per/org/member_of"),
            ("dana@example.org", "corrected", "None"),
        ]
        assert history[0].created_at == datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)

    # a decision older than the pair's current one is listed, not applied over it
    old = ls_task(when="2026-11-01T00:00:00Z")
    old["annotations"][0]["completed_by"] = 5
    path.write_text(json.dumps([old]))
    with sessions.begin() as session:
        report = import_label_studio(session, path, images_dir=tmp_path / "imgs")
    assert report.decisions_added == 0 and "labelstudio-user-5" in report.stale[0]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Annotation)) == 2


def _set(task: dict, path: list, value) -> dict:
    task = copy.deepcopy(task)
    node = task
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return task


RESULT = ["annotations", 0, "result"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ((["data", "text"], KeyError), "task 1: data.text"),
        ((["data", "text"], 17), "task 1: data.text"),
        (([*RESULT, 0, "value", "start"], 1), "task 1: annotations[0].result[0].value.start"),
        (([*RESULT, 1, "value", "end"], 23), "task 1: annotations[0].result[1].value.end"),
        (([*RESULT, 1, "value", "text"], "Inter"), "task 1: annotations[0].result[1].value.text"),
        (([*RESULT, 0, "value", "labels"], ["person"]), "task 1: annotations[0].result[0].value.labels"),
        (([*RESULT, 2, "to_id"], "zz"), "task 1: annotations[0].result[2].to_id"),
        (([*RESULT, 2, "labels"], ["/per/per/friend"]), "task 1: annotations[0].result[2].labels"),
        (([*RESULT, 2, "labels"], []), "task 1: annotations[0].result[2].labels"),
        ((["annotations", 0, "completed_by"], None), "task 1: annotations[0].completed_by"),
        ((["annotations", 0, "updated_at"], "yesterday"), "task 1: annotations[0].updated_at"),
        ((["annotations", 0, "result"], "x"), "task 1: annotations[0].result"),
        (([*RESULT, 2], KeyError), "task 1: annotations[0].result"),  # spans but no relation
    ],
)
def test_malformed_tasks_name_the_task_and_field_and_store_nothing(sessions, tmp_path, change, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([ls_task(), _set(ls_task(), *change)]))  # task 0 is fine
    with pytest.raises(DataFormatError) as err, sessions.begin() as session:
        import_label_studio(session, path)
    assert f"field '{field}'" in str(err.value) and str(path) in str(err.value)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Post)) == 0


def test_cli_exports_and_imports_label_studio_json(tmp_path, reviewed, db_url, capsys):
    out = tmp_path / "ls.json"
    assert main(["--database-url", db_url, "export", "--format", "labelstudio", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 7
    fresh = ["--database-url", f"sqlite:///{tmp_path / 'other.db'}"]
    assert main([*fresh, "import-labelstudio", str(out), "--as", "tester"]) == 0
    assert "7 pairs added" in capsys.readouterr().out
    (tmp_path / "broken.json").write_text('[{"data": {"text": 5}}]')
    capsys.readouterr()
    assert main([*fresh, "import-labelstudio", str(tmp_path / "broken.json"), "--as", "tester"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "task 0: data.text" in err[0]


def test_annotations_that_name_no_pair_are_listed_not_recorded(sessions, tmp_path):
    skipped = ls_task(was_cancelled=True)
    skipped["annotations"][0]["result"] = []
    empty = ls_task()
    empty["annotations"][0]["result"] = []
    untouched = {"data": {"text": "nobody looked at this"}, "annotations": []}
    path = tmp_path / "project.json"
    path.write_text(json.dumps([ls_task(), skipped, empty, untouched]))
    with sessions.begin() as session:
        report = import_label_studio(session, path)
    assert (report.tasks, report.new_pairs, report.decisions_added) == (4, 1, 1)
    assert [x.split(":")[0] for x in report.ignored] == [
        "task 1 annotations[0] by labelstudio-user-3",
        "task 2 annotations[0] by labelstudio-user-3",
    ]
