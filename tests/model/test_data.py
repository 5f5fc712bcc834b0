import shutil
from pathlib import Path

import pytest
from PIL import Image

from model.data import (
    ENTITY_MARKERS,
    DataFormatError,
    Entity,
    encode_text,
    load_split,
    marked_words,
    read_records,
    shuffled_indices,
)
from model.images import ImageError, load_image

GOOD = (
    "{'token': ['Obama', 'meets', 'Merkel', 'in', 'Berlin'], 'h': {'name': 'Obama', 'pos': [0, 1]}, "
    "'t': {'name': 'Berlin', 'pos': [4, 5]}, 'img_id': 'a.jpg', 'relation': '/per/loc/place_of_residence'}"
)


def write_split(root: Path, lines: list[str], images: dict[str, bytes] | None = None) -> Path:
    (root / "txt").mkdir(parents=True)
    (root / "img_org" / "val").mkdir(parents=True)
    (root / "ours_rel2id.json").write_text('{"None": 0, "/per/loc/place_of_residence": 1}')
    (root / "txt" / "ours_val.txt").write_text("\n".join(lines) + "\n")
    for name, data in (images or {}).items():
        (root / "img_org" / "val" / name).write_bytes(data)
    return root


def test_markers_when_the_tail_ends_the_sentence():
    words, _ = marked_words(["a", "b", "c"], Entity("a", 0, 1), Entity("c", 2, 3))
    assert words == ["<s>", "a", "</s>", "b", "<o>", "c", "</o>"]


def test_nested_and_overlapping_spans_keep_balanced_markers():
    nested, _ = marked_words(list("abcde"), Entity("x", 0, 3), Entity("y", 1, 2))
    assert nested == ["<s>", "a", "<o>", "b", "</o>", "c", "</s>", "d", "e"]
    same, _ = marked_words(list("abc"), Entity("x", 1, 3), Entity("y", 1, 3))
    assert same == ["a", "<s>", "<o>", "b", "c", "</o>", "</s>"]
    crossing, _ = marked_words(list("abcde"), Entity("x", 0, 3), Entity("y", 2, 5))
    assert crossing == ["<s>", "a", "b", "<o>", "c", "</s>", "d", "e", "</o>"]


@pytest.mark.parametrize("max_length", [12, 16, 24])
def test_truncation_keeps_all_markers_and_both_entities(minilm_tokenizer, max_length):
    tokens = [f"w{i}" for i in range(60)]
    tokens[3], tokens[50] = "paris", "london"
    head, tail = Entity("paris", 3, 4), Entity("london", 50, 51)
    enc = encode_text(tokens, head, tail, minilm_tokenizer, max_length)
    pieces = minilm_tokenizer.convert_ids_to_tokens(enc.input_ids)
    assert enc.truncated and len(enc.input_ids) == max_length
    assert all(pieces.count(m) == 1 for m in ENTITY_MARKERS)
    assert "paris" in pieces and "london" in pieces
    assert pieces[enc.head_index] == "<s>" and pieces[enc.tail_index] == "<o>"
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    # the kept context is a window around each entity, in the original order
    kept_words = [w for w in enc.word_index if w >= 0]
    assert kept_words == sorted(kept_words) and 3 in kept_words and 50 in kept_words


def test_no_truncation_for_short_text(minilm_tokenizer):
    enc = encode_text(
        ["Obama", "meets", "Paris"], Entity("Obama", 0, 1), Entity("Paris", 2, 3), minilm_tokenizer, 80
    )
    assert not enc.truncated
    assert minilm_tokenizer.convert_ids_to_tokens(enc.input_ids)[-3:] == ["paris", "</o>", "[SEP]"]


def test_malformed_line_names_file_line_and_field(tmp_path):
    bad = GOOD.replace("'pos': [4, 5]", "'pos': [4, 9]")
    root = write_split(tmp_path, [GOOD, bad, GOOD])
    with pytest.raises(DataFormatError) as err:
        load_split(root, "val")
    assert err.value.line == 2 and err.value.field == "t.pos"
    assert "ours_val.txt:2" in str(err.value)


@pytest.mark.parametrize(
    "line,field",
    [
        ("not a dict", None),
        ("{'token': []}", "token"),
        (GOOD.replace("/per/loc/place_of_residence", "/bogus"), "relation"),
        (GOOD.replace("'a.jpg'", "'../../etc/passwd'"), "img_id"),
        (GOOD.replace("'a.jpg'", "'/etc/passwd'"), "img_id"),
        ("__import__('os').system('true')", None),
    ],
)
def test_bad_fields_are_named(tmp_path, line, field):
    root = write_split(tmp_path, [line])
    with pytest.raises(DataFormatError) as err:
        load_split(root, "val")
    assert err.value.field == field and err.value.line == 1


def test_skip_bad_loads_the_rest_and_reports(tmp_path):
    root = write_split(tmp_path, [GOOD, "garbage", GOOD])
    records, _, report = load_split(root, "val", skip_bad=True)
    assert [r.line for r in records] == [1, 3]
    assert len(report.skipped) == 1 and "ours_val.txt:2" in report.skipped[0]


def test_missing_and_corrupt_images_mean_no_image(tmp_path):
    import io

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buf, format="JPEG")
    other = GOOD.replace("'a.jpg'", "'b.jpg'")
    corrupt = GOOD.replace("'a.jpg'", "'c.jpg'")
    root = write_split(tmp_path, [GOOD, other, corrupt], {"a.jpg": buf.getvalue(), "c.jpg": b"not an image"})
    records, _, report = load_split(root, "val")
    assert records[0].image_path is not None and records[0].image_path.name == "a.jpg"
    assert records[1].image_path is None and records[2].image_path is None
    assert (report.with_image, report.missing_image) == (1, 2)


def test_raw_line_is_kept_for_exact_export(tmp_path):
    root = write_split(tmp_path, [GOOD])
    assert read_records(root / "txt" / "ours_val.txt")[0].raw_line == GOOD


def test_shuffle_never_keeps_a_records_own_image():
    for n in (2, 3, 10, 101):
        perm = shuffled_indices(n, seed=n)
        assert sorted(perm) == list(range(n)) and all(p != i for i, p in enumerate(perm))
    assert shuffled_indices(10, 1) == shuffled_indices(10, 1)


def test_real_mnre_counts(mnre_root):
    """MNRE v2 val has 1,624 records and 23 labels; how many images a copy holds differs between copies, so the
    expected image counts are derived from the files here, independently of the loader."""
    import ast

    records, labels, report = load_split(mnre_root, "val")
    assert len(records) == 1624 and len(labels) == 23
    image_dir = mnre_root / "img_org" / "val"

    def readable(name: str) -> bool:
        # fully decoded, as the project reads images (PIL's verify() passes a JPEG cut short)
        try:
            load_image(image_dir / name)
            return True
        except ImageError:
            return False

    lines = (mnre_root / "txt" / "ours_val.txt").read_text(encoding="utf-8").splitlines()
    img_ids = [ast.literal_eval(line).get("img_id") for line in lines if line.strip()]
    present = {p.name for p in image_dir.iterdir()} if image_dir.is_dir() else set()
    expected_with = sum(1 for name in img_ids if name in present and readable(name))
    assert report.with_image == expected_with
    assert report.missing_image == sum(name is not None for name in img_ids) - expected_with
    with_image = [r for r in records if r.image_path is not None]
    assert len(with_image) == expected_with and all(
        r.image_path.parent == image_dir.resolve() for r in with_image
    )
    assert all(r.image_path.name == r.img_id for r in with_image)


# ----------------------------------------------------------------------------------------------------------------
# Hostile files: size limits, encodings, the crop dictionary, and a reader that does not need torch


def _write_bytes_split(root: Path, data: bytes) -> Path:
    write_split(root, [GOOD])
    (root / "txt" / "ours_val.txt").write_bytes(data)
    return root


def test_a_line_over_the_byte_limit_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    import tracemalloc

    monkeypatch.setenv("MRELENS_MAX_LINE_BYTES", "4096")
    huge = "{'token': [" + "'x', " * 4_000_000 + "]}"  # 20 MB on one line
    root = _write_bytes_split(tmp_path, (GOOD + "\n" + huge + "\n" + GOOD + "\n").encode())
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError) as err:
            load_split(root, "val")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.line == 2 and "4096" in str(err.value) and "ours_val.txt:2" in str(err.value)
    assert peak < 2_000_000, peak  # the 20 MB line was never held in memory
    records, _, report = load_split(root, "val", skip_bad=True)
    assert [r.line for r in records] == [1, 3] and len(report.skipped) == 1


def test_a_file_over_the_byte_limit_is_refused(tmp_path, monkeypatch):
    root = write_split(tmp_path, [GOOD] * 50)
    monkeypatch.setenv("MRELENS_MAX_FILE_BYTES", "1000")
    with pytest.raises(DataFormatError) as err:
        # a whole-file limit is not a bad line: skip_bad does not apply
        load_split(root, "val", skip_bad=True)
    assert err.value.line is None and "1000" in str(err.value) and "ours_val.txt" in str(err.value)


def test_a_post_over_the_token_limit_names_the_field(tmp_path, monkeypatch):
    monkeypatch.setenv("MRELENS_MAX_POST_TOKENS", "4")
    four = GOOD.replace("'Obama', 'meets', ", "'Obama', ").replace("'pos': [4, 5]", "'pos': [3, 4]")
    root = write_split(tmp_path, [four])
    load_split(root, "val")  # 4 tokens: at the limit
    root = write_split(tmp_path / "five", [GOOD])
    with pytest.raises(DataFormatError) as err:
        load_split(root, "val")
    assert (err.value.line, err.value.field) == (1, "token") and "5 tokens" in str(err.value)


def test_a_bad_limit_setting_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MRELENS_MAX_LINE_BYTES", "lots")
    with pytest.raises(DataFormatError, match="MRELENS_MAX_LINE_BYTES"):  # what every CLI reports as one line
        load_split(write_split(tmp_path, [GOOD]), "val")


def test_latin1_lines_name_file_and_line_and_skip_bad_skips_them(tmp_path):
    latin1 = GOOD.replace("Berlin", "Zürich").encode("latin-1")
    root = _write_bytes_split(tmp_path, GOOD.encode() + b"\n" + latin1 + b"\n" + GOOD.encode() + b"\n")
    with pytest.raises(DataFormatError) as err:
        load_split(root, "val")
    assert err.value.line == 2 and "UTF-8" in str(err.value) and "ours_val.txt:2" in str(err.value)
    records, _, report = load_split(root, "val", skip_bad=True)
    assert [r.line for r in records] == [1, 3] and "ours_val.txt:2" in report.skipped[0]


def test_utf16_file_is_named_as_such(tmp_path):
    root = _write_bytes_split(tmp_path, (GOOD + "\n" + GOOD + "\n").encode("utf-16"))
    with pytest.raises(DataFormatError) as err:
        load_split(root, "val")
    assert err.value.line == 1 and "UTF-16" in str(err.value)
    records, _, report = load_split(root, "val", skip_bad=True)
    assert records == [] and len(report.skipped) == 2  # every line is reported, nothing crashes


def test_utf8_with_bom_and_crlf_reads_like_plain_utf8(tmp_path):
    text = GOOD.replace("Berlin", "Zürich")
    root = _write_bytes_split(tmp_path, b"\xef\xbb\xbf" + (text + "\r\n" + text + "\r\n").encode())
    records, _, _ = load_split(root, "val")
    assert [r.tokens[-1] for r in records] == ["Zürich", "Zürich"] and records[0].raw_line == text


def test_bad_label_map_values_are_a_data_error(tmp_path):
    root = write_split(tmp_path, [GOOD])
    (root / "ours_rel2id.json").write_text('{"None": 0, "/per/loc/place_of_residence": "1"}')
    with pytest.raises(DataFormatError, match="ours_rel2id.json"):
        load_split(root, "val")
    (root / "ours_rel2id.json").write_bytes('{"None": 0, "/per/loc/ü": 1}'.encode("latin-1"))
    with pytest.raises(DataFormatError, match="UTF-8"):
        load_split(root, "val")


def _crop_dict_root(tmp_path, payload) -> Path:
    import torch

    root = write_split(tmp_path, [GOOD])
    (root / "img_vg" / "val" / "crops").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "img_vg" / "val" / "crops" / "c0.png")
    torch.save(payload, root / "txt" / "mre_dev_dict.pth")
    return root


def test_crop_dictionary_is_read_and_anything_but_plain_data_is_refused(tmp_path):
    import torch

    records, _, _ = load_split(_crop_dict_root(tmp_path / "ok", {0: ["c0.png"]}), "val")
    assert [p.name for p in records[0].crop_paths] == ["c0.png"]
    with pytest.raises(DataFormatError, match="mre_dev_dict.pth"):
        load_split(_crop_dict_root(tmp_path / "tensor", {0: torch.zeros(2)}), "val")
    with pytest.raises(DataFormatError, match=r"mre_dev_dict.pth.*\[0\]"):
        load_split(_crop_dict_root(tmp_path / "notalist", {0: 5}), "val")
    root = _crop_dict_root(tmp_path / "garbage", {})
    (root / "txt" / "mre_dev_dict.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataFormatError, match="mre_dev_dict.pth"):
        load_split(root, "val")


def test_a_pickle_with_code_in_the_crop_dictionary_is_never_run(tmp_path):
    import pickle
    import zipfile

    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    root = _crop_dict_root(tmp_path / "evil", {})
    with zipfile.ZipFile(root / "txt" / "mre_dev_dict.pth", "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({0: Exploit()}, protocol=2))
        zf.writestr("archive/version", "3\n")
    with pytest.raises(DataFormatError, match="mre_dev_dict.pth"):
        load_split(root, "val")
    assert not marker.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["model.evaluate", "--model", "{tmp}/none", "--data", "{root}"],
        ["model.train", "--data", "{root}", "--output-dir", "{tmp}/run"],
        ["model.shuffle", "--eval-split", "val", "--data", "{root}", "--output-dir", "{tmp}/run"],
    ],
    ids=["evaluate", "train", "shuffle"],
)
def test_data_errors_reach_the_model_clis_as_one_error_line(tmp_path, command):
    import subprocess
    import sys

    latin1 = GOOD.replace("Berlin", "Zürich").encode("latin-1")
    root = _write_bytes_split(tmp_path / "data", GOOD.encode() + b"\n" + latin1 + b"\n")
    shutil.copy(root / "txt" / "ours_val.txt", root / "txt" / "ours_train.txt")
    args = [part.format(tmp=tmp_path, root=root) for part in command]
    done = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(errors) == 1 and ".txt:2" in errors[0] and "UTF-8" in errors[0], done.stderr[-2000:]


def test_the_label_store_cli_does_not_import_torch(tmp_path):
    """A real import and export of a tiny store through `python -m db`, in a fresh process: torch is never loaded
    (an import of torch anywhere on the reader, store or export path, even inside a function, shows up here)."""
    import subprocess
    import sys

    root = write_split(tmp_path / "mnre", [GOOD, GOOD.replace("Berlin", "Paris")])
    out = tmp_path / "export" / "ours_val.txt"
    probe = (
        "import runpy, sys\n"
        "def cli(*args):\n"
        "    sys.argv = ['db', *args]\n"
        "    try:\n        runpy.run_module('db', run_name='__main__')\n"
        "    except SystemExit as done:\n        assert not done.code, (args, done.code)\n"
        f"url = 'sqlite:///{tmp_path / 'store.db'}'\n"
        f"cli('--database-url', url, 'import', {str(root)!r})\n"
        f"cli('--database-url', url, 'export', '--format', 'mnre', '--out', {str(out)!r})\n"
        "print('torch loaded:', 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # the export ran: both records come back byte-exact
    assert out.read_text(encoding="utf-8").splitlines() == [GOOD, GOOD.replace("Berlin", "Paris")], (
        done.stdout
    )
    assert done.stdout.strip().endswith("torch loaded: False"), done.stdout[-500:]


def test_a_jpeg_cut_short_means_no_image(tmp_path):
    import io

    buf = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buf, format="JPEG", quality=95)
    whole = buf.getvalue()
    root = write_split(
        tmp_path,
        [GOOD, GOOD.replace("'a.jpg'", "'half.jpg'")],
        {"a.jpg": whole, "half.jpg": whole[: len(whole) // 2]},
    )
    records, _, report = load_split(root, "val")
    assert records[0].image_path is not None and records[1].image_path is None
    assert (report.with_image, report.missing_image) == (1, 1)


def test_code_in_a_line_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    root = write_split(tmp_path / "data", [f"__import__('pathlib').Path({str(marker)!r}).touch()", GOOD])
    with pytest.raises(DataFormatError) as err:
        load_split(root, "val")
    assert err.value.line == 1 and not marker.exists()
    records, _, report = load_split(root, "val", skip_bad=True)
    assert len(records) == 1 and len(report.skipped) == 1 and not marker.exists()
