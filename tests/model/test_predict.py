"""Prediction on new posts: parsing, grounding, batching, per-line errors, streaming, sharding, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.mnre_format import DataFormatError, Entity
from model.predict import (
    build_predictor,
    main,
    merge_shards,
    numbered_lines,
    parse_post,
    predict_posts,
    predict_stream,
)

REPO = Path(__file__).resolve().parents[2]
TINY_VISION = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_text_encoder, tmp_path_factory) -> Path:
    """A tiny random IFAformer (objects variant, the 23 MNRE labels) saved as a checkpoint folder."""
    from model.encoders import build_model
    from model.synthetic import MNRE_LABELS

    torch.manual_seed(0)
    model, tokenizer = build_model("objects", MNRE_LABELS, tiny_text_encoder, vision_config=TINY_VISION)
    folder = tmp_path_factory.mktemp("predict_ckpt")
    model.save_pretrained(folder, tokenizer)
    return folder


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from model.checkpoint import load_checkpoint

    return load_checkpoint(tiny_model_dir)


@pytest.fixture
def posts_file(tmp_path) -> Path:
    from PIL import Image, ImageDraw

    (tmp_path / "img").mkdir()
    image = Image.new("RGB", (96, 64), (240, 240, 240))
    ImageDraw.Draw(image).ellipse((20, 10, 60, 50), fill=(200, 20, 20))
    image.save(tmp_path / "img" / "ball.png")
    (tmp_path / "img" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    lines = [
        {
            "id": "a",
            "text": "Messi joins Inter Miami today",
            "head": "messi",
            "tail": [2, 4],
            "image": "img/ball.png",
        },
        {
            "id": "b",
            "token": ["Obama", "meets", "Merkel"],
            "h": {"name": "Obama", "pos": [0, 1]},
            "t": {"pos": [2, 3]},
        },
        {"id": "c", "text": "Paris is in France", "head": "Berlin", "tail": "France"},
        "",
        "{not json",
        {"id": "f", "text": "Paris is in France", "head": [0, 1], "tail": [3, 4], "image": "img/broken.jpg"},
        {"id": "g", "text": "Paris is in France", "head": [0, 1], "tail": [3, 9]},
    ]
    path = tmp_path / "posts.jsonl"
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8"
    )
    return path


def test_parse_post_reads_spans_strings_and_mnre_keys(tmp_path):
    post = parse_post({"text": "RT  Messi joins INTER Miami", "head": "Messi", "tail": "inter miami"}, 3)
    assert post.tokens == ["RT", "Messi", "joins", "INTER", "Miami"]
    assert (post.head, post.tail) == (Entity("Messi", 1, 2), Entity("INTER Miami", 3, 5))
    post = parse_post(
        '{"token": ["a", "b"], "h": {"pos": [0, 1]}, "t": [1, 2], "img_id": "x.jpg"}', 4, "f", tmp_path
    )
    assert (post.head.start, post.tail.end, post.image_path) == (0, 2, tmp_path / "x.jpg")
    for obj, field in [
        ({"head": [0, 1], "tail": [1, 2]}, "text"),
        ({"text": "a b", "tail": [1, 2]}, "head"),
        ({"text": "a b", "head": [0, 1], "tail": [1, 3]}, "tail"),
        ({"text": "a b", "head": [0, 1], "tail": "c"}, "tail"),
        ({"text": "a b", "head": [0, 1], "tail": [1, 2], "image": 5}, "image"),
        ({"tokens": ["a", ""], "head": [0, 1], "tail": [1, 2]}, "tokens"),
    ]:
        with pytest.raises(DataFormatError) as err:
            parse_post(obj, 7, "posts.jsonl")
        assert str(err.value).startswith(f"posts.jsonl:7: field '{field}'"), err.value


def test_cli_predicts_grounds_and_reports_bad_lines_without_stopping(
    tiny_model_dir, posts_file, tmp_path, capsys
):
    out = tmp_path / "pred.jsonl"
    rc = main(
        ["--model", str(tiny_model_dir), str(posts_file), "--out", str(out), "--batch-size", "2", "--quiet"]
    )
    assert rc == 1  # some lines failed
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in results] == [1, 2, 3, 5, 6, 7]  # input order, the blank line skipped
    ok = {r["id"]: r for r in results if "error" not in r}
    assert set(ok) == {"a", "b"}
    version = json.loads((tiny_model_dir / "config.json").read_text())["version_id"]
    for r in ok.values():
        assert len(r["probabilities"]) == 23 and sum(r["probabilities"].values()) == pytest.approx(
            1, abs=1e-5
        )
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["model_version"] == version
    grounding = ok["a"]["grounding"]
    assert grounding["source"] == "cam-fallback" and grounding["fallback"] is True
    assert 1 <= len(grounding["objects"]) <= 3 and grounding["image_size"] == [96, 64]
    x0, y0, x1, y1 = grounding["objects"][0]["box"]
    assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 64
    assert ok["b"]["grounding"] is None and ok["b"]["image"] is None
    errors = {r["line"]: r["error"] for r in results if "error" in r}
    assert [r["id"] for r in results if "error" in r] == ["c", None, "f", "g"]
    assert errors[3].startswith(f"{posts_file}:3: field 'head'") and "'Berlin'" in errors[3]
    assert errors[5].startswith(f"{posts_file}:5:") and "not valid JSON" in errors[5]
    assert errors[6].startswith(f"{posts_file}:6: field 'image'")
    assert errors[7].startswith(f"{posts_file}:7: field 'tail'")
    err = capsys.readouterr().err
    assert err.count("error: ") == 4 and "2 of 6 posts predicted" in err
    assert main(["--model", str(tmp_path / "nowhere"), str(posts_file), "--out", str(out), "--quiet"]) == 2
    assert main(["--model", str(tiny_model_dir), str(tmp_path / "none.jsonl"), "--out", str(out)]) == 2


def test_probabilities_are_the_model_s_own_and_do_not_depend_on_the_batch(loaded, posts_file):
    from model.batching import prepare_examples
    from model.evaluate import predict_probabilities
    from model.mnre_format import Record

    model, tokenizer = loaded
    posts = [json.loads(x) for x in posts_file.read_text().splitlines()[:2]]
    posts = [{**p, "image": str(posts_file.parent / p["image"])} if "image" in p else p for p in posts] * 3
    one = list(predict_posts(posts, model=model, tokenizer=tokenizer, batch_size=1))
    four = list(predict_posts(posts, model=model, tokenizer=tokenizer, batch_size=4))
    for a, b in zip(one, four, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
    assert one[0]["probabilities"] == pytest.approx(one[2]["probabilities"], abs=1e-6)
    # the text-only post scored directly through the training / evaluation path gives the same distribution
    record = Record(["Obama", "meets", "Merkel"], Entity("Obama", 0, 1), Entity("Merkel", 2, 3), "None")
    prepared = prepare_examples([record], tokenizer, model.config, None, None)
    direct = predict_probabilities(model, prepared.examples, tokenizer.pad_token_id)[0]
    expected = dict(zip(model.config.label_names, direct.tolist(), strict=True))
    assert one[1]["probabilities"] == pytest.approx(expected, abs=1e-6)
    # the image changes the prediction input: a post with its image differs from the same post without it
    no_image = {k: v for k, v in posts[0].items() if k != "image"}
    (without,) = predict_posts([no_image], model=model, tokenizer=tokenizer)
    assert without["probabilities"] != pytest.approx(one[0]["probabilities"], abs=1e-6)


def test_input_is_consumed_lazily_one_batch_at_a_time(loaded):
    model, tokenizer = loaded
    pulled = []

    def posts():
        for i in range(50):
            pulled.append(i)
            yield {"id": i, "text": f"Alice {i} met Bob", "head": [0, 1], "tail": [3, 4]}

    outputs = predict_posts(posts(), model=model, tokenizer=tokenizer, batch_size=4, ground=False)
    assert pulled == []  # nothing read before the first output is asked for
    first = next(outputs)
    assert first["id"] == 0 and len(pulled) == 4  # one batch read, not the whole input
    for _ in range(4):
        next(outputs)
    assert len(pulled) == 8
    assert [o["id"] for o in outputs] == list(range(5, 50)) and len(pulled) == 50


def test_shards_merge_back_into_input_order(loaded, posts_file, tmp_path):
    model, tokenizer = loaded
    predictor = build_predictor(None, model, tokenizer, ground=False, source=str(posts_file))
    base = posts_file.parent
    single = [json.dumps(r) for r in predict_stream(predictor, numbered_lines(posts_file), 2, base)]
    parts = []
    for rank in range(3):
        part = tmp_path / f"part{rank}"
        part.write_text(
            "".join(
                json.dumps(r) + "\n"
                for r in predict_stream(predictor, numbered_lines(posts_file), 2, base, rank, 3)
            )
        )
        parts.append(part)
    assert [json.loads(x)["line"] for x in parts[1].read_text().splitlines()] == [2, 6]
    assert merge_shards(parts, tmp_path / "merged.jsonl") == len(single) == 6
    merged = [json.loads(x) for x in (tmp_path / "merged.jsonl").read_text().splitlines()]
    for got, want in zip(merged, map(json.loads, single), strict=True):
        # batches differ between shards, so padding can move probabilities in the last float digits
        assert {k: v for k, v in got.items() if k != "probabilities"} == {
            k: v for k, v in want.items() if k != "probabilities"
        }
        assert got.get("probabilities") == pytest.approx(want.get("probabilities"), abs=1e-5)


def test_explanations_on_request(loaded, posts_file):
    model, tokenizer = loaded
    post = json.loads(posts_file.read_text().splitlines()[0])
    post["image"] = str(posts_file.parent / post["image"])
    (plain,) = predict_posts([post], model=model, tokenizer=tokenizer)
    assert "explanation" not in plain
    (out,) = predict_posts([post], model=model, tokenizer=tokenizer, explain=True, explain_steps=4)
    explanation = out["explanation"]
    assert explanation["prediction"]["label"] == out["label"]
    assert explanation["token_attribution"]["top_tokens"] and explanation["visual_attribution"] is not None
    attention = explanation["attention"]
    assert 0 <= attention["entity_visual_share"] <= 1 and len(attention["top_visual_tokens"]) == 3


@pytest.mark.slow
def test_torchrun_shards_and_never_loads_the_store_or_the_app(tiny_model_dir, posts_file, tmp_path):
    out = tmp_path / "ranked.jsonl"
    env = {**os.environ, "TORCH_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29617",
        "-m",
        "model.predict",
        "--model",
        str(tiny_model_dir),
        str(posts_file),
        "--out",
        str(out),
        "--quiet",
        "--no-grounding",
    ]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stderr[-2000:]  # bad lines reported, not fatal
    assert [json.loads(x)["line"] for x in out.read_text().splitlines()] == [1, 2, 3, 5, 6, 7]
    assert not list(tmp_path.glob(".ranked.jsonl.part*"))
    probe = (
        "import sys; from model.predict import main; "
        f"rc = main(['--model', {str(tiny_model_dir)!r}, {str(posts_file)!r}, '--out', {str(tmp_path / 'p.jsonl')!r},"
        " '--quiet']); print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'db', 'app'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.stdout.strip().splitlines()[-1] == "1 []", done.stderr[-2000:]


def test_every_unreadable_line_is_its_own_error_and_the_batch_goes_on(tiny_model_dir, tmp_path, capsys):
    good = json.dumps({"id": "ok", "text": "Obama meets Merkel", "head": [0, 1], "tail": [2, 3]})
    lines = [
        good.encode(),
        b'{"id": 1, "text": "a b", "head": [0, 1], "tail": [1, 2], "n": ' + b"7" * 5000 + b"}",
        b'{"id": 2, "text": "a b", "head": [0, 1], "tail": [1, 2], "x": '
        + b"[" * 2_000
        + b"]" * 2_000
        + b"}",
        '{"id": 3, "text": "Müller trifft Merkel", "head": [0, 1], "tail": [2, 3]}'.encode("latin-1"),
        b'{"id": 4, "text": "' + b"w " * 5_000 + b'", "head": [0, 1], "tail": [1, 2]}',
        good.encode(),
    ]
    posts = tmp_path / "hostile.jsonl"
    posts.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "pred.jsonl"
    rc = main(
        ["--model", str(tiny_model_dir), str(posts), "--out", str(out), "--max-line-bytes", "8000", "--quiet"]
    )
    assert rc == 1
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in results] == [1, 2, 3, 4, 5, 6]
    assert "error" not in results[0] and "error" not in results[5]
    errors = {r["line"]: r["error"] for r in results if "error" in r}
    assert errors[2].startswith(f"{posts}:2:") and "digits" in errors[2]
    assert errors[3].startswith(f"{posts}:3:") and "nested" in errors[3]
    assert errors[4].startswith(f"{posts}:4:") and "not UTF-8" in errors[4]
    assert errors[5].startswith(f"{posts}:5:") and "longer than 8000 bytes" in errors[5]
    assert "Traceback" not in capsys.readouterr().err


def test_a_huge_line_is_never_held_whole(tmp_path):
    import tracemalloc

    posts = tmp_path / "big.jsonl"
    with open(posts, "wb") as fh:
        fh.write(b'{"text": "' + b"x" * (30 << 20) + b'"}\n{"text": "a b", "head": [0, 1], "tail": [1, 2]}\n')
    tracemalloc.start()
    items = list(numbered_lines(posts, max_line_bytes=1 << 20))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert isinstance(items[0][1], DataFormatError) and "longer than" in str(items[0][1])
    assert items[1][0] == 2 and json.loads(items[1][1])["text"] == "a b"
    assert peak < 4 << 20, peak
