"""One validation layer for every record entering the store (db/validate.py): names, labels, image paths, limits,
column sizes and Label Studio's raw_line. Each refusal names the file and field and stores nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from db.annotations import record_annotation
from db.cli import main
from db.io import import_mnre, import_post
from db.label_export import export_labels
from db.label_studio import export_label_studio, import_label_studio
from db.models import Annotation, Dataset, EntityPair, Post
from model.mnre_format import DataFormatError
from tests.db.test_label_studio import ls_task


def _counts(sessions) -> tuple[int, int, int, int]:
    with sessions() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model))
            for model in (Dataset, Post, EntityPair, Annotation)
        )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"split": "x/../../../../elsewhere"}, "split"),
        ({"split": ".."}, "split"),
        ({"split": "s" * 33}, "split"),
        ({"dataset": "../posts"}, "dataset"),
        ({"dataset": "d" * 65}, "dataset"),
        ({"dataset": "a\nb"}, "dataset"),
        ({"label": "/per/per/friend_of_a_friend"}, "label"),
    ],
)
def test_import_post_refuses_unsafe_names_and_unknown_labels(sessions, kwargs, field):
    with pytest.raises(DataFormatError) as caught, sessions.begin() as session:
        import_post(session, "Obama meets Merkel", (0, 1), (2, 3), **kwargs)
    assert f"field '{field}'" in str(caught.value)
    assert _counts(sessions) == (0, 0, 0, 0)


def test_import_post_limits_words(sessions):
    with pytest.raises(DataFormatError, match="token limit"), sessions.begin() as session:
        import_post(session, "w " * 200_000, (0, 1), (1, 2))
    assert _counts(sessions) == (0, 0, 0, 0)


def test_mnre_import_refuses_an_unsafe_dataset_name(sessions, mini_mnre):
    with pytest.raises(DataFormatError, match="dataset name"), sessions.begin() as session:
        import_mnre(session, mini_mnre, dataset="a/b")
    assert _counts(sessions) == (0, 0, 0, 0)


def _write(tmp_path, tasks, name="project.json"):
    path = tmp_path / name
    path.write_text(json.dumps(tasks))
    return path


def _mrelens_task(**meta) -> dict:
    task = ls_task()
    task["data"]["mrelens"] = {
        "tokens": ["Messi", "joins", "Inter", "Miami"],
        "head": [0, 1],
        "tail": [2, 4],
        "split": "val",
        "gold_label": "None",
        **meta,
    }
    task["data"]["text"] = "Messi joins Inter Miami"
    task["annotations"][0]["result"][1]["value"].update(start=12, end=23)
    return task


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ({"split": "x/../../../elsewhere"}, "data.mrelens.split"),
        ({"dataset": "../../etc"}, "data.mrelens.dataset"),
        ({"gold_label": "/not/a/relation"}, "data.mrelens.gold_label"),
        ({"source_key": "k" * 500}, "data.mrelens.source_key"),
        ({"raw_line": "[1, 2, 3]"}, "data.mrelens.raw_line"),
        ({"raw_line": "[" * 100_000}, "data.mrelens.raw_line"),
        (
            {
                "raw_line": "{'token': ['Messi', 'joins', 'Inter', 'Miami'], 'h': {'name': 'Messi', 'pos': [0, 1]}, "
                "'t': {'name': 'Inter Miami', 'pos': [2, 4]}, 'img_id': None, 'relation': 'None'}\n{'extra': 1}"
            },
            "data.mrelens.raw_line",
        ),
        (
            {
                "raw_line": "{'token': ['Someone', 'else'], 'h': {'name': 'Someone', 'pos': [0, 1]}, "
                "'t': {'name': 'else', 'pos': [1, 2]}, 'img_id': None, 'relation': 'None'}"
            },
            "data.mrelens.raw_line",
        ),
    ],
)
def test_label_studio_meta_is_checked_before_anything_is_stored(sessions, tmp_path, meta, field):
    path = _write(tmp_path, [_mrelens_task(**meta)])
    with pytest.raises(DataFormatError) as caught, sessions.begin() as session:
        import_label_studio(session, path)
    assert f"field 'task 0: {field}'" in str(caught.value) and str(path) in str(caught.value)
    assert _counts(sessions) == (0, 0, 0, 0)


def test_a_valid_raw_line_round_trips_byte_for_byte(sessions, tmp_path):
    raw = (
        "{'token': ['Messi', 'joins', 'Inter', 'Miami'], 'h': {'name': 'Messi', 'pos': [0, 1]}, "
        "'t': {'name': 'Inter Miami', 'pos': [2, 4]}, 'img_id': None, 'relation': 'None', 'extra': 7}"
    )
    task = _mrelens_task(raw_line=raw, source_key="val:1", source_line=1)
    task["annotations"] = []
    task["data"]["image"] = None
    with sessions.begin() as session:
        import_label_studio(session, _write(tmp_path, [task]))
    with sessions() as session:
        export_labels(session, "mnre", tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text() == raw + "\n"


@pytest.mark.parametrize(
    ("completed_by", "problem"),
    [("x" * 201, "at most 200"), ("eve\n  alice / bob: kappa 1.000", "control"), ("a\u2028b", "control")],
)
def test_label_studio_annotator_names_fit_the_column_and_have_no_line_breaks(
    sessions, tmp_path, completed_by, problem
):
    task = ls_task()
    task["annotations"][0]["completed_by"] = completed_by
    with pytest.raises(DataFormatError, match=problem), sessions.begin() as session:
        import_label_studio(session, _write(tmp_path, [task]))
    assert _counts(sessions) == (0, 0, 0, 0)


def test_label_studio_image_path_is_used_only_inside_the_image_folders(sessions, tmp_path):
    from PIL import Image

    outside = tmp_path / "private"
    outside.mkdir()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(outside / "secret.png")
    (outside / "notes.txt").write_text("not an image")
    images = tmp_path / "imgs"
    images.mkdir()
    reports = []
    for target in (
        outside / "secret.png",
        outside / "notes.txt",
        outside / "missing.png",
        images / ".." / "private" / "secret.png",
    ):
        task = ls_task()
        task["data"]["mrelens"] = {"image_path": str(target)}
        with sessions.begin() as session:
            report = import_label_studio(session, _write(tmp_path, [task]), images_dir=images)
        reports.append((report.without_image, report.images_not_used))
    # the same answer whether the outside path is an image, another file or nothing: no image, listed
    assert reports == [(1, 1)] * 4
    with sessions() as session:
        assert not session.scalar(select(func.count()).select_from(Post).where(Post.has_image))


def test_label_studio_cannot_add_pairs_to_a_dataset_imported_from_a_folder(sessions, mini_mnre, tmp_path):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    before = _counts(sessions)
    task = _mrelens_task(dataset="mnre", split="train", source_key="train:999", gold_label="None")
    with pytest.raises(DataFormatError, match="imported from"), sessions.begin() as session:
        import_label_studio(session, _write(tmp_path, [task]))
    # nor name an existing pair with other words
    task = _mrelens_task(dataset="mnre", split="train", source_key="train:1", head=[0, 1], tail=[2, 3])
    with pytest.raises(DataFormatError, match="other words"), sessions.begin() as session:
        import_label_studio(session, _write(tmp_path, [task]))
    assert _counts(sessions) == before


def test_label_studio_file_size_words_and_nesting_are_limited(sessions, tmp_path):
    big = tmp_path / "big.json"
    with open(big, "w") as fh:
        fh.write("[" + " " * (3 << 20) + "]")
    with pytest.raises(DataFormatError, match="over the .* byte limit"), sessions.begin() as session:
        import_label_studio(session, big, max_file_bytes=1 << 20)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataFormatError, match="nested"), sessions.begin() as session:
        import_label_studio(session, deep)
    wordy = ls_task(text="Messi  joins Inter Miami" + " w" * 2_000)
    with pytest.raises(DataFormatError, match="token limit"), sessions.begin() as session:
        import_label_studio(session, _write(tmp_path, [wordy]))
    assert _counts(sessions) == (0, 0, 0, 0)


def test_label_studio_bad_relation_and_far_timestamps_are_one_error(sessions, tmp_path):
    task = ls_task()
    task["annotations"][0]["result"][2]["labels"] = [["/per/org/member_of"]]
    with pytest.raises(DataFormatError, match="labels"), sessions.begin() as session:
        import_label_studio(session, _write(tmp_path, [task]))
    task = ls_task(when="9999-12-31T23:59:59-05:00")
    with pytest.raises(DataFormatError, match="updated_at"), sessions.begin() as session:
        import_label_studio(session, _write(tmp_path, [task]))
    assert _counts(sessions) == (0, 0, 0, 0)


def test_reimporting_a_skip_adds_nothing(sessions, mini_mnre, tmp_path):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        pair = session.scalars(
            select(EntityPair).where(EntityPair.split == "train", EntityPair.source_line == 1)
        ).one()
        record_annotation(
            session, pair.id, status="corrected", label="None", annotator="alice", expected_revision=0
        )
        record_annotation(session, pair.id, status="skipped", annotator="bob", expected_revision=1)
    out = tmp_path / "tasks.json"
    with sessions() as session:
        export_label_studio(session, out)
    tasks = json.loads(out.read_text())
    for task in tasks:  # Label Studio exports a skip without results: the pair comes from data.mrelens
        for annotation in task["annotations"]:
            if annotation["was_cancelled"]:
                annotation["result"] = []
    out.write_text(json.dumps(tasks))
    with sessions() as session:
        n = session.scalar(select(func.count()).select_from(Annotation))
    for _ in range(2):
        with sessions.begin() as session:
            report = import_label_studio(session, out)
        assert report.decisions_added == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Annotation)) == n


def test_cli_import_labelstudio_has_a_file_size_option(tmp_path, db_url, capsys):
    path = _write(tmp_path, [ls_task()])
    assert main(["--database-url", db_url, "init"]) == 0
    assert (
        main(
            [
                "--database-url",
                db_url,
                "import-labelstudio",
                str(path),
                "--max-file-bytes",
                "10",
                "--as",
                "local",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "byte limit" in err[0]


def test_cli_import_labelstudio_says_who_acts_and_whose_decisions_it_records(tmp_path, db_url, capsys):
    path = _write(tmp_path, [ls_task()])
    assert main(["--database-url", db_url, "init"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["--database-url", db_url, "import-labelstudio", str(path)])
    assert stopped.value.code == 2 and "--as" in capsys.readouterr().err
    assert main(["--database-url", db_url, "import-labelstudio", str(path), "--as", "sam\nforged"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["--database-url", db_url, "import-labelstudio", str(path), "--as", "sam@example.org"]) == 0
    out = capsys.readouterr().out
    assert "imported by sam@example.org" in out and "'labelstudio-user-3'" in out


@pytest.mark.parametrize("line", [10**30, -1, 0, 2**31])
def test_label_studio_source_line_fits_its_column(sessions, tmp_path, line):
    task = _mrelens_task(source_key="val:1", source_line=line)
    with pytest.raises(DataFormatError, match="source_line"), sessions.begin() as session:
        import_label_studio(session, _write(tmp_path, [task]))
    assert _counts(sessions) == (0, 0, 0, 0)
