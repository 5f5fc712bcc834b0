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
    records, labels, report = load_split(mnre_root, "val")
    assert len(records) == 1624 and len(labels) == 23
    assert report.with_image == 7 and report.missing_image == 1617
    assert all(r.image_path is None or r.image_path.is_file() for r in records)
