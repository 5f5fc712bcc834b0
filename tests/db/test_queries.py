import json
import math

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from db.annotations import current_state, current_states, pair_history, record_annotation, undo_last
from db.curation import CurationReport, curated_training_records
from db.errors import ConcurrentEditError, LabelStoreError
from db.io import import_mnre
from db.models import Annotation, EntityPair, ModelVersion, Prediction
from db.provenance import (
    evaluation_runs,
    find_model_version,
    register_checkpoint,
    register_model_version,
    save_crops,
    save_evaluation_run,
    save_explanation,
    save_predictions,
    set_active,
    uncertainty,
)
from db.review_queue import QueueFilter, image_reliance_source, pair_detail, progress, review_queue
from model.data import read_records


@pytest.fixture
def imported(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    with sessions() as session:
        ids = {(pair.split, pair.source_line): pair.id for pair in session.scalars(select(EntityPair))}
    return sessions, ids


def test_history_is_append_only_and_the_current_label_is_derived_from_it(imported):
    sessions, ids = imported
    pair_id = ids[("train", 2)]
    with sessions.begin() as session:
        record_annotation(session, pair_id, status="accepted", annotator="ann", expected_revision=0)
    with sessions.begin() as session:
        record_annotation(
            session,
            pair_id,
            status="corrected",
            label="/loc/loc/contain",
            annotator="bob",
            expected_revision=1,
            note="Berlin is a place",
        )
    with sessions.begin() as session:
        record_annotation(session, pair_id, status="skipped", annotator="cat", expected_revision=2)
    with sessions() as session:
        history = pair_history(session, pair_id)
        assert [(a.revision, a.status, a.label, a.annotator) for a in history] == [
            (1, "accepted", "None", "ann"),  # accepting takes the gold label
            (2, "corrected", "/loc/loc/contain", "bob"),
            (3, "skipped", "/loc/loc/contain", "cat"),  # a skip keeps the previous decision
        ]
        state = current_state(history)
        assert (state.status, state.label, state.revision) == ("skipped", "/loc/loc/contain", 3)
        assert current_states(session)[pair_id] == state
        assert state.curated_label("None") == "/loc/loc/contain"
        detail = pair_detail(session, pair_id)
        assert detail.current == state and [a.revision for a in detail.history] == [1, 2, 3]
        assert detail.post.tokens == ["Obama", "meets", "Merkel", "in", "Berlin"]


def test_record_annotation_rejects_unknown_labels_and_statuses(imported):
    sessions, ids = imported
    with sessions() as session:
        with pytest.raises(LabelStoreError, match="unknown label"):
            record_annotation(
                session,
                ids[("train", 1)],
                status="corrected",
                label="/x/y",
                annotator="a",
                expected_revision=0,
            )
        with pytest.raises(LabelStoreError, match="unknown status"):
            record_annotation(session, ids[("train", 1)], status="maybe", annotator="a", expected_revision=0)
        with pytest.raises(LabelStoreError, match="needs a label"):
            record_annotation(
                session, ids[("train", 1)], status="corrected", annotator="a", expected_revision=0
            )
        with pytest.raises(LabelStoreError, match="annotator"):
            record_annotation(
                session, ids[("train", 1)], status="accepted", annotator=" ", expected_revision=0
            )
        with pytest.raises(LabelStoreError, match="no entity pair"):
            record_annotation(session, 10_000, status="accepted", annotator="a", expected_revision=0)


def test_undo_appends_rows_that_restore_earlier_states(imported):
    sessions, ids = imported
    pair_id = ids[("train", 1)]
    with sessions.begin() as session:
        record_annotation(
            session, pair_id, status="corrected", label="None", annotator="ann", expected_revision=0
        )
        record_annotation(session, pair_id, status="rejected", annotator="bob", expected_revision=1)
        undo_last(session, pair_id, annotator="bob", expected_revision=2)
        assert current_state(pair_history(session, pair_id)).status == "corrected"
        undo_last(session, pair_id, annotator="ann", expected_revision=3)
        with pytest.raises(LabelStoreError, match="nothing to undo"):
            undo_last(session, pair_id, annotator="ann", expected_revision=4)
    with sessions() as session:
        history = pair_history(session, pair_id)
    assert [(a.revision, a.status, a.label) for a in history] == [
        (1, "corrected", "None"),
        (2, "rejected", None),
        (3, "corrected", "None"),
        (4, "unreviewed", None),
    ]
    assert history[2].undoes_id == history[1].id and history[3].undoes_id == history[0].id
    assert current_state(history).curated_label("/per/per/peer") == "/per/per/peer"  # back to the gold label


def test_annotations_cannot_be_edited_silently(imported):
    sessions, ids = imported
    with sessions.begin() as session:
        record_annotation(session, ids[("train", 1)], status="accepted", annotator="ann", expected_revision=0)
    # a second row with the same revision is refused by the database itself
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.execute(
            insert(Annotation),
            [{"pair_id": ids[("train", 1)], "revision": 1, "status": "rejected", "annotator": "mallory"}],
        )


def test_second_concurrent_save_fails_with_who_changed_it(imported):
    sessions, ids = imported
    pair_id = ids[("train", 3)]
    # both reviewers load the pair at revision 0
    with sessions() as alice_view, sessions() as bob_view:
        seen_by_alice = pair_detail(alice_view, pair_id).current.revision
        seen_by_bob = pair_detail(bob_view, pair_id).current.revision
    with sessions.begin() as alice:
        record_annotation(
            alice,
            pair_id,
            status="corrected",
            label="None",
            annotator="alice",
            expected_revision=seen_by_alice,
        )
    with (
        pytest.raises(ConcurrentEditError, match="changed by alice meanwhile") as err,
        sessions.begin() as bob,
    ):
        record_annotation(bob, pair_id, status="accepted", annotator="bob", expected_revision=seen_by_bob)
    assert (err.value.annotator, err.value.revision) == ("alice", 1)
    # after reloading, bob's decision records on top of alice's
    with sessions.begin() as bob:
        record_annotation(bob, pair_id, status="accepted", annotator="bob", expected_revision=1)
    with sessions() as session:
        assert [(a.annotator, a.revision) for a in pair_history(session, pair_id)] == [
            ("alice", 1),
            ("bob", 2),
        ]


# the race between the revision check and the insert: tests/db/test_concurrency.py


def _probabilities(top: str, p_top: float, second: str, p_second: float) -> dict[str, float]:
    rest = (1 - p_top - p_second) / 2
    others = [
        label
        for label in ("None", "/per/per/peer", "/per/org/member_of", "/loc/loc/contain")
        if label not in (top, second)
    ]
    return {top: p_top, second: p_second, others[0]: rest, others[1]: rest}


def test_review_queue_sorts_and_filters(imported):
    sessions, ids = imported
    with sessions.begin() as session:
        version = register_model_version(session, "v1", "/models/v1", "ifaformer", metrics={"f1": 0.5})
        set_active(session, "v1")
        save_predictions(
            session,
            version.id,
            [
                # margin 0.1, agrees with gold
                {
                    "pair_id": ids[("train", 1)],
                    "probabilities": _probabilities("/per/per/peer", 0.5, "None", 0.4),
                    "image_reliance": 0.1,
                },
                # margin 0.85, disagrees
                {
                    "pair_id": ids[("train", 2)],
                    "probabilities": _probabilities("/per/per/peer", 0.9, "None", 0.05),
                    "image_reliance": 0.7,
                },
                # margin 0.02, disagrees
                {
                    "pair_id": ids[("train", 3)],
                    "probabilities": _probabilities("None", 0.45, "/per/org/member_of", 0.43),
                    # the post has no image: 0 by definition, as the reliance job stores it
                    "image_reliance": 0.0,
                },
                {
                    "pair_id": ids[("val", 1)],
                    "probabilities": _probabilities("/per/per/peer", 0.6, "None", 0.2),
                },
            ],
        )
        record_annotation(
            session,
            ids[("train", 2)],
            status="corrected",
            label="/per/per/peer",
            annotator="bob",
            expected_revision=0,
        )

    def queue(sort="uncertainty", **filters):
        with sessions() as session:
            return [
                (item.split, item.source_line) for item in review_queue(session, QueueFilter(**filters), sort)
            ]

    assert queue()[:4] == [("train", 3), ("train", 1), ("val", 1), ("train", 2)]  # margin ascending
    assert len(queue()) == 7  # pairs without predictions come last
    # entropies (nats): val 1 1.089, train 3 1.060, train 1 1.013, train 2 0.429
    assert queue("entropy")[:4] == [("val", 1), ("train", 3), ("train", 1), ("train", 2)]
    assert queue("image_reliance")[:2] == [("train", 2), ("train", 1)]
    # a post without an image has no reliance to show or sort by (its stored 0 is a definition, not a measurement)
    with sessions() as session:
        no_image = review_queue(session, QueueFilter(split="train"), "image_reliance")
        assert [(i.source_line, i.has_image, i.image_reliance) for i in no_image][2] == (3, False, None)
        # nor is it counted as a pair the version computed reliance for (2 posts with an image, not 3)
        assert image_reliance_source(session, version.id).pairs == 2
    assert queue("disagreement")[:2] == [("train", 2), ("train", 3)]  # most confident disagreement first
    assert queue("source_order")[0] == ("train", 1)
    assert queue(split="val") == [("val", 1), ("val", 2)]
    assert queue(predicted_label="/per/per/peer") == [("train", 1), ("val", 1), ("train", 2)]
    assert queue(gold_label="/per/org/member_of") == [("train", 3)]
    assert queue(status="corrected") == [("train", 2)]
    assert queue(annotator="bob") == [("train", 2)]
    assert ("train", 2) not in queue(status="unreviewed") and len(queue(status="unreviewed")) == 6
    assert queue(text="MIAMI") == [("train", 3)]

    def random_queue(seed, offset=0, limit=50, **filters):
        with sessions() as session:
            return [
                item.pair_id
                for item in review_queue(
                    session, QueueFilter(**filters), "random", limit=limit, offset=offset, random_seed=seed
                )
            ]

    everything = random_queue(1)
    assert sorted(everything) == sorted(ids.values()) and everything == random_queue(1)
    assert everything != random_queue(2) and everything != sorted(everything)
    # pages of the shuffle tile it, and a filter keeps the order of the pairs it keeps
    assert random_queue(1, limit=3) + random_queue(1, offset=3, limit=50) == everything
    unreviewed = random_queue(1, status="unreviewed")
    assert unreviewed == [pair_id for pair_id in everything if pair_id != ids[("train", 2)]]
    assert queue(text="100%") == []
    assert queue(dataset="other") == []
    with sessions() as session:
        item = review_queue(session, QueueFilter(status="corrected"))[0]
        assert (item.current_label, item.revision, item.predicted_label) == (
            "/per/per/peer",
            1,
            "/per/per/peer",
        )
        assert item.margin == pytest.approx(0.85) and item.image_reliance == pytest.approx(0.7)
        with pytest.raises(LabelStoreError, match="unknown sort"):
            review_queue(session, sort="shuffled")


def test_progress_counts_current_statuses(imported):
    sessions, ids = imported
    with sessions.begin() as session:
        record_annotation(session, ids[("train", 1)], status="accepted", annotator="a", expected_revision=0)
        record_annotation(session, ids[("train", 2)], status="rejected", annotator="a", expected_revision=0)
        record_annotation(
            # not the gold label "None": a correction to the gold label is recorded as accepted
            session,
            ids[("train", 2)],
            status="corrected",
            label="/loc/loc/contain",
            annotator="b",
            expected_revision=1,
        )
    with sessions() as session:
        counts = progress(session)
        assert (counts["accepted"], counts["corrected"], counts["rejected"], counts["unreviewed"]) == (
            1,
            1,
            0,
            5,
        )
        assert counts["total"] == 7
        assert progress(session, split="val")["unreviewed"] == 2


def test_save_predictions_replaces_and_computes_uncertainty(imported):
    sessions, ids = imported
    assert uncertainty({"a": 0.5, "b": 0.5})[2] == 0
    label, confidence, margin, entropy = uncertainty({"a": 0.7, "b": 0.2, "c": 0.1})
    assert (label, confidence, margin) == ("a", 0.7, pytest.approx(0.5))
    assert entropy == pytest.approx(-(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)))
    with sessions.begin() as session:
        version = register_model_version(session, "v1", "/m/v1", "text-only")
        rows = [{"pair_id": ids[("train", 1)], "probabilities": {"None": 0.2, "/per/per/peer": 0.8}}]
        save_predictions(session, version.id, rows, settings={"batch_size": 8})
        rows[0]["probabilities"] = {"None": 0.9, "/per/per/peer": 0.1}
        save_predictions(session, version.id, rows)
        save_predictions(session, version.id, rows, method="shuffled-image")
    with sessions() as session:
        stored = list(session.scalars(select(Prediction).order_by(Prediction.method)))
        assert [(p.method, p.predicted_label) for p in stored] == [
            ("forward", "None"),
            ("shuffled-image", "None"),
        ]
        assert stored[0].model_version.version_id == "v1"


def test_model_versions_register_checkpoints_and_switch_active(sessions, tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"version_id": "ifa-2", "variant": "ifaformer"}))
    with sessions.begin() as session:
        register_model_version(session, "ifa-1", "/m/1", "ifaformer", metrics={"f1": 0.6})
        child = register_checkpoint(session, checkpoint, parent_version_id="ifa-1", metrics={"f1": 0.65})
        assert register_checkpoint(session, checkpoint).id == child.id  # registering twice is harmless
        set_active(session, "ifa-1")
        set_active(session, "ifa-2")
        with pytest.raises(LabelStoreError, match="already registered"):
            register_model_version(session, "ifa-2", "/elsewhere", "ifaformer")
        with pytest.raises(LabelStoreError, match="not registered"):
            register_model_version(session, "ifa-3", "/m/3", "x", parent_version_id="nope")
    with sessions() as session:
        assert session.scalars(select(ModelVersion.version_id).where(ModelVersion.is_active)).all() == [
            "ifa-2"
        ]
        child = find_model_version(session, "ifa-2")
        assert (child.parent.version_id, child.variant, child.metrics) == ("ifa-1", "ifaformer", {"f1": 0.65})
    (checkpoint / "config.json").write_text(json.dumps({"variant": "x"}))
    with pytest.raises(LabelStoreError, match="version_id"), sessions.begin() as session:
        register_checkpoint(session, checkpoint)


def test_crops_explanations_and_evaluation_runs_keep_their_provenance(imported):
    sessions, ids = imported
    with sessions.begin() as session:
        pair = session.get(EntityPair, ids[("train", 3)])
        version = register_model_version(session, "v1", "/m/v1", "ifaformer")
        save_crops(
            session,
            pair.post_id,
            [{"box": (1, 2, 30, 40), "label": "man", "score": 0.8}],
            source="grounding-dino-tiny",
            settings={"box_threshold": 0.35},
        )
        # replaces the earlier crops of this source
        save_crops(
            session,
            pair.post_id,
            [{"box": (0, 0, 5, 5), "label": "ball", "score": 0.5}],
            source="grounding-dino-tiny",
        )
        save_explanation(
            session,
            pair.id,
            "integrated_gradients",
            {"image_share": 0.4},
            settings={"steps": 32},
            version_key=version.id,
            created_by="ann",
        )
        save_evaluation_run(session, "ifaformer", "shuffle-test", "val", {"f1": 0.3}, version_key=version.id)
        with pytest.raises(LabelStoreError, match="unknown setting"):
            save_evaluation_run(session, "ifaformer", "shuffled", "val", {})
    with sessions() as session:
        detail = pair_detail(session, ids[("train", 3)])
        assert [(c.label, c.box_x1, c.source) for c in detail.crops] == [("ball", 5.0, "grounding-dino-tiny")]
        assert detail.explanations[0].summary == {"image_share": 0.4}
        explanation = detail.explanations[0]
        assert (explanation.method, explanation.settings, explanation.created_by) == (
            "integrated_gradients",
            {"steps": 32},
            "ann",
        )
        assert explanation.model_version_id == find_model_version(session, "v1").id
        assert [(r.variant, r.setting, r.metrics) for r in evaluation_runs(session, "val")] == [
            ("ifaformer", "shuffle-test", {"f1": 0.3})
        ]


def test_curated_training_records_apply_corrections_and_drop_rejected(imported, mini_mnre):
    sessions, ids = imported
    records = read_records(mini_mnre / "txt" / "ours_train.txt")
    with sessions.begin() as session:
        record_annotation(
            session,
            ids[("train", 2)],
            status="corrected",
            label="/loc/loc/contain",
            annotator="a",
            expected_revision=0,
        )
        record_annotation(session, ids[("train", 4)], status="rejected", annotator="a", expected_revision=0)
        record_annotation(session, ids[("train", 1)], status="accepted", annotator="a", expected_revision=0)
        record_annotation(session, ids[("train", 5)], status="skipped", annotator="a", expected_revision=0)
    report = CurationReport()
    with sessions() as session:
        curated = curated_training_records(session, records, "mnre", "train", report)
    assert [(r.line, r.relation) for r in curated] == [
        (1, "/per/per/peer"),
        (2, "/loc/loc/contain"),
        (3, "/per/org/member_of"),
        (5, "None"),
    ]
    assert records[1].relation == "None"  # the input is left as it was
    assert (report.records, report.corrected, report.dropped, report.not_in_store) == (5, 1, 1, 0)
    assert report.changes == {("None", "/loc/loc/contain"): 1}
    with sessions() as session, pytest.raises(LabelStoreError, match="no dataset"):
        curated_training_records(session, records, "other", "train")


def test_curated_training_records_refuse_records_that_differ_from_the_store(imported, mini_mnre):
    sessions, _ = imported
    records = read_records(mini_mnre / "txt" / "ours_train.txt")
    with sessions.begin() as session:
        session.execute(
            update(EntityPair)
            .where(EntityPair.source_line == 2, EntityPair.split == "train")
            .values(raw_line="something else")
        )
    with sessions() as session, pytest.raises(LabelStoreError, match="line 2"):
        curated_training_records(session, records, "mnre", "train")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(EntityPair)) == 7
