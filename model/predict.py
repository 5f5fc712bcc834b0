"""Run a saved model on new posts: JSONL in, JSONL out, grounding included, no label store and no app.

    python -m model.predict --model runs/mnre_objects/best posts.jsonl --out predictions.jsonl [--explain]
    torchrun --nproc_per_node 4 -m model.predict --model ... posts.jsonl --out predictions.jsonl

Input, one JSON object per line (blank lines are skipped)::

    {"id": "p1", "text": "Messi joins Inter Miami", "head": "Messi", "tail": [2, 4], "image": "photos/messi.jpg"}

- `text` (split on whitespace) or `tokens` (a list of words; MNRE's `token` also works);
- `head` / `tail` (MNRE's `h` / `t` also work): a word span `[start, end)`, `{"pos": [start, end]}` (with an
  optional `name`), or the entity's words as a string, located in the post (first exact match, then ignoring case);
- `image` (or `img_id`): a path, relative to the input file's folder; absent or null = a post without an image;
- `id`: anything, copied to the output.

Output, one line per input line, in input order: `line`, `id`, `label` (top relation), `probabilities` (every
relation), `model_version`, `image`, `grounding` (source, fallback flag, objects with boxes in image pixels, labels,
scores) and, with --explain, `explanation` (attention and attribution summaries, explain.explain_post). A line that
cannot be predicted gives `{"line", "id", "error": "posts.jsonl:7: field 'head' ..."}`, also printed on stderr; the
other lines go on. Exit status 0 when every line was predicted, 1 when some were not, 2 for a usage error.

Grounding: the configured grounder (--grounder: a local GroundingDINO folder or cached hub id, or "cam"), else the
offline CAM fallback (model.grounding.ground_objects). Its crops feed the `objects` / `no_text_attn` variants.

Memory stays constant in the number of posts: lines are read, predicted and written a batch at a time (visual
features and crops live for one batch). Under torchrun, rank r takes posts r, r + world, ... and rank 0 merges the
ranks' outputs into input order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.mnre_format import DataFormatError, Entity, Record
from model.safe_write import UnsafeTargetError, check_target

CLI_ERROR, SOME_LINES_FAILED = 2, 1
DEFAULT_MAX_LINE_BYTES = 1 << 20  # one input line (a post is a few hundred bytes)
MAX_JSON_DEPTH = 32  # an input line's nesting (a post needs 3)


def json_depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text (brackets inside strings do not count), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


@dataclass
class Post:
    """One parsed input line."""

    line: int
    id: Any
    tokens: list[str]
    head: Entity
    tail: Entity
    image_path: Path | None


# ----------------------------------------------------------------------------------------------------------------
# Parsing one line


def _locate(words: list[str], phrase: str) -> tuple[int, int] | None:
    """[start, end) of the first occurrence of phrase's words in `words`: exact, then ignoring case."""
    target = phrase.split()
    n = len(target)
    if not n:
        return None
    for fold in (False, True):
        key = [w.casefold() for w in target] if fold else target
        for i in range(len(words) - n + 1):
            window = words[i : i + n]
            if ([w.casefold() for w in window] if fold else window) == key:
                return i, i + n
    return None


def _entity(raw: Any, fld: str, tokens: list[str], err) -> Entity:
    name = None
    if isinstance(raw, dict):
        name, raw = raw.get("name"), raw.get("pos")
        fld = f"{fld}.pos"
        if raw is None and isinstance(name, str):
            raw, fld = name, fld[: -len(".pos")]
    if isinstance(raw, str):
        span = _locate(tokens, raw)
        if span is None:
            raise err(fld, f"{raw!r} is not in the post's words")
        start, end = span
    elif (
        isinstance(raw, list | tuple)
        and len(raw) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
    ):
        start, end = raw
        if not 0 <= start < end <= len(tokens):
            raise err(fld, f"span {list(raw)} does not fit 0 <= start < end <= {len(tokens)} words")
    else:
        raise err(fld, "must be a word span [start, end), {'pos': [start, end]} or the entity's words")
    return Entity(name if isinstance(name, str) else " ".join(tokens[start:end]), start, end)


def parse_post(obj: Any, line: int, source: str = "<input>", base_dir: Path | None = None) -> Post:
    """One input object -> Post; a DataFormatError names source:line and the field."""

    def err(fld: str | None, problem: str) -> DataFormatError:
        return DataFormatError(source, line, fld, problem)

    if isinstance(obj, str):
        depth = json_depth(obj)
        if depth > MAX_JSON_DEPTH:
            raise err(None, f"JSON nested {depth} levels deep (at most {MAX_JSON_DEPTH})")
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as e:
            raise err(None, f"not valid JSON ({e.msg}, column {e.colno})") from e
        except ValueError as e:  # e.g. an integer of more than 4,300 digits
            raise err(None, f"not valid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise err(None, f"must be a JSON object, got {type(obj).__name__}")
    tokens = obj.get("tokens", obj.get("token"))
    if tokens is not None:
        fld = "tokens" if "tokens" in obj else "token"
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t.strip() for t in tokens):
            raise err(fld, "must be a list of non-empty words")
    elif isinstance(obj.get("text"), str):
        tokens = obj["text"].split()
    else:
        raise err("text", "missing: give `text` (a string) or `tokens` (a list of words)")
    if not tokens:
        raise err("text", "has no words")
    entities = []
    for key, alias in (("head", "h"), ("tail", "t")):
        fld = key if key in obj else alias
        if obj.get(fld) is None:
            raise err(key, "missing: a word span [start, end) or the entity's words")
        entities.append(_entity(obj[fld], fld, tokens, err))
    image = obj.get("image", obj.get("img_id"))
    image_path = None
    if image is not None:
        fld = "image" if "image" in obj else "img_id"
        if not isinstance(image, str) or not image:
            raise err(fld, "must be a file path")
        image_path = Path(image) if base_dir is None else base_dir / image
    return Post(line, obj.get("id"), tokens, entities[0], entities[1], image_path)


# ----------------------------------------------------------------------------------------------------------------
# Predicting a batch


def _load_image(post: Post, source: str):
    from model.images import ImageError, load_image

    try:
        return load_image(post.image_path).convert("RGB")
    except (ImageError, OSError) as e:
        raise DataFormatError(source, post.line, "image", f"{post.image_path}: {e}") from e


def _attention_summary(bundle) -> dict[str, Any] | None:
    """How much the entity tokens draw from the image, and from which visual tokens (attention rollout)."""
    att = bundle.attention
    if att.rollout_text_to_visual.size == 0:
        return None
    entity = att.entity_token_mask
    flow = att.rollout_text_to_visual[entity].mean(0)
    order = flow.argsort()[::-1][:3]
    return {
        "entity_visual_share": float(att.rollout_visual_share[entity].mean()),
        "top_visual_tokens": [[att.visual_labels[i], float(flow[i])] for i in order],
        "crop_attention_last_layer": [float(v) for v in att.crop_scores[-1][entity].mean(0)]
        if att.crop_scores.size
        else [],
    }


def _explain(model, tokenizer, record: Record, cache, n_steps: int | None) -> dict[str, Any]:
    """explain.explain_post, the one assembly (the app's and the benchmarks'), with its default settings
    (explain.bundle.DEFAULT_SETTINGS) unless n_steps is given."""
    from explain import explain_post

    steps = {"n_steps": n_steps} if n_steps else {}
    bundle = explain_post(model, tokenizer, record, feature_cache=cache, **steps)
    summary = bundle.summary()
    summary["attention"] = _attention_summary(bundle)
    return summary


class Predictor:
    """A loaded model with its grounder; `run(posts)` predicts one batch of parsed posts."""

    def __init__(
        self,
        model,
        tokenizer,
        grounder=None,
        ground: bool = True,
        feature_cache: str | Path | None = None,
        crops_dir: str | Path | None = None,
        explain: bool = False,
        explain_steps: int | None = None,  # None: explain.bundle.DEFAULT_SETTINGS
        device: str = "cpu",
        source: str = "<input>",
    ):
        self.model, self.tokenizer, self.grounder, self.ground = model, tokenizer, grounder, ground
        self.feature_cache_dir = feature_cache
        self.crops_dir = Path(crops_dir) if crops_dir else None
        self.explain, self.explain_steps, self.device, self.source = explain, explain_steps, device, source
        self.labels = list(model.config.label_names)
        self.version = model.config.version_id or "unsaved"
        self._cam = None

    @property
    def cam(self):
        if self._cam is None:
            from model.grounding import CamGrounder

            self._cam = CamGrounder()
        return self._cam

    def _grounding(self, post: Post, image, crop_folder: Path) -> tuple[dict[str, Any] | None, list[Path]]:
        from model.grounding import ground_objects

        if image is None or not self.ground:
            return None, []
        result = ground_objects(
            image, post.tokens, [post.head, post.tail], grounder=self.grounder, cam=self.cam
        )
        crop_paths, objects = [], []
        for k, (obj, crop) in enumerate(zip(result.objects, result.crops, strict=True)):
            path = crop_folder / f"line{post.line}_crop{k}.png"
            crop.save(path)
            crop_paths.append(path)
            objects.append({**obj.to_dict(), "crop": str(path) if self.crops_dir else None})
        summary = {"source": result.source, "fallback": result.fallback, "prompt": result.prompt}
        return {**summary, "objects": objects, "image_size": result.image_size}, crop_paths

    @torch.no_grad()
    def run(self, posts: list[Post | DataFormatError]) -> list[dict[str, Any]]:
        """Outputs in the order of `posts`; an error (parsing or image) becomes that line's error output."""
        from model.batching import prepare_examples
        from model.evaluate import predict_probabilities
        from model.visual_features import FeatureCache

        outputs: list[dict[str, Any] | None] = [None] * len(posts)
        records, where, groundings = [], [], []
        cache = FeatureCache(self.feature_cache_dir)  # one batch's features in memory, then dropped
        with tempfile.TemporaryDirectory(prefix="mrelens-crops-") as tmp:
            crop_folder = self.crops_dir or Path(tmp)
            crop_folder.mkdir(parents=True, exist_ok=True)
            for i, post in enumerate(posts):
                if isinstance(post, DataFormatError):
                    outputs[i] = {"line": post.line, "id": getattr(post, "post_id", None), "error": str(post)}
                    continue
                try:
                    image = _load_image(post, self.source) if post.image_path is not None else None
                    grounding, crop_paths = self._grounding(post, image, crop_folder)
                except DataFormatError as e:
                    outputs[i] = {"line": post.line, "id": post.id, "error": str(e)}
                    continue
                uses_crops = getattr(self.model.config, "num_crops", 0) > 0
                records.append(
                    Record(
                        tokens=post.tokens,
                        head=post.head,
                        tail=post.tail,
                        relation=self.labels[0],  # a placeholder: the label is never fed to the model
                        img_id=post.image_path.name if post.image_path else None,
                        line=post.line,
                        image_path=post.image_path.resolve() if image is not None else None,
                        crop_paths=crop_paths if uses_crops else [],
                    )
                )
                where.append(i)
                groundings.append(grounding)
            if records:
                prepared = prepare_examples(records, self.tokenizer, self.model.config, None, cache)
                probs = predict_probabilities(
                    self.model, prepared.examples, self.tokenizer.pad_token_id, len(records), self.device
                )
                for k, (i, row) in enumerate(zip(where, probs.tolist(), strict=True)):
                    post, record = posts[i], records[k]
                    distribution = {name: float(p) for name, p in zip(self.labels, row, strict=True)}
                    out = {
                        "line": post.line,
                        "id": post.id,
                        "label": max(distribution, key=distribution.get),
                        "probabilities": distribution,
                        "model_version": self.version,
                        "image": str(post.image_path) if post.image_path else None,
                        "grounding": groundings[k],
                    }
                    if self.explain:
                        out["explanation"] = _explain(
                            self.model, self.tokenizer, record, cache, self.explain_steps
                        )
                    outputs[i] = out
        return outputs  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------------------------
# Streaming, sharding


def _id_of(obj: Any) -> Any:
    if isinstance(obj, str):
        if json_depth(obj) > MAX_JSON_DEPTH:
            return None
        try:
            obj = json.loads(obj)
        except ValueError:  # not JSON: the error output has no id
            return None
    return obj.get("id") if isinstance(obj, dict) else None


def numbered_lines(
    path: str | Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[tuple[int, str | DataFormatError]]:
    """(1-based line number, text) of each non-blank line, read lazily. A line that is not UTF-8 or is longer than
    `max_line_bytes` comes as (number, DataFormatError) instead (the rest of a long line is skipped unread into
    memory: at most `max_line_bytes` + 1 bytes of one line are held), so one bad line never stops the batch."""
    with open(path, "rb") as fh:
        number = 0
        while True:
            data = fh.readline(max_line_bytes + 1)
            if not data:
                return
            number += 1
            if len(data) > max_line_bytes and not data.endswith(b"\n"):
                while data and not data.endswith(b"\n"):  # skip to the end of this line, a chunk at a time
                    data = fh.readline(1 << 20)
                yield (
                    number,
                    DataFormatError(path, number, None, f"line is longer than {max_line_bytes} bytes"),
                )
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                yield (
                    number,
                    DataFormatError(path, number, None, f"not UTF-8 text (byte {e.start + 1}: {e.reason})"),
                )
                continue
            if text.strip():
                yield number, text


def predict_stream(
    predictor: Predictor,
    items: Iterable[tuple[int, Any]],
    batch_size: int = 16,
    base_dir: Path | None = None,
    rank: int = 0,
    world: int = 1,
    progress: bool = False,
    total: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Outputs of (line, object-or-JSON-text) items, in order, pulling at most `batch_size` items ahead.

    With world > 1 only items rank, rank + world, ... are predicted (the others are skipped unread)."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        unit="post",
        desc=f"predict rank {rank}" if world > 1 else "predict",
        disable=not progress,
    )
    batch: list[Post | DataFormatError] = []
    try:
        for k, (line, obj) in enumerate(items):
            if k % world != rank:
                continue
            if isinstance(obj, DataFormatError):  # unreadable line (numbered_lines): its error is the output
                obj.post_id = None
                batch.append(obj)
            else:
                try:
                    batch.append(parse_post(obj, line, predictor.source, base_dir))
                except DataFormatError as e:
                    e.post_id = _id_of(obj)  # the error output still says which post it was, when it can
                    batch.append(e)
            if len(batch) == batch_size:
                yield from predictor.run(batch)
                bar.update(len(batch))
                batch = []
        if batch:
            yield from predictor.run(batch)
            bar.update(len(batch))
    finally:
        bar.close()


def predict_posts(
    posts: Iterable[dict | str],
    model_dir: str | Path | None = None,
    *,
    model=None,
    tokenizer=None,
    batch_size: int = 16,
    grounder: str | Path | None = None,
    ground: bool = True,
    explain: bool = False,
    explain_steps: int | None = None,  # None: explain.bundle.DEFAULT_SETTINGS
    feature_cache: str | Path | None = None,
    crops_dir: str | Path | None = None,
    base_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> Iterator[dict[str, Any]]:
    """Predict posts (dicts, or JSON lines) lazily: yields one output dict per post, in order (see module doc).

    Give `model_dir` (a checkpoint folder) or an already loaded `model` and `tokenizer`. Posts are numbered from 1;
    a post that cannot be predicted yields {"line", "id", "error"}.
    """
    predictor = build_predictor(
        model_dir,
        model,
        tokenizer,
        grounder,
        ground,
        explain,
        feature_cache,
        crops_dir,
        device,
        "<posts>",
        explain_steps,
    )
    base = Path(base_dir) if base_dir is not None else None
    return predict_stream(predictor, enumerate(posts, start=1), batch_size, base, progress=progress)


def build_predictor(
    model_dir,
    model=None,
    tokenizer=None,
    grounder=None,
    ground: bool = True,
    explain: bool = False,
    feature_cache=None,
    crops_dir=None,
    device: str = "cpu",
    source: str = "<input>",
    explain_steps: int | None = None,  # None: explain.bundle.DEFAULT_SETTINGS
) -> Predictor:
    from model.grounding import load_grounder

    if model is None:
        if model_dir is None:
            raise ValueError("give model_dir or a loaded model and tokenizer")
        from model.checkpoint import load_checkpoint

        model, tokenizer = load_checkpoint(model_dir, device)
    model.to(device).eval()
    loaded = load_grounder(grounder, strict=True) if grounder is not None else None
    return Predictor(
        model, tokenizer, loaded, ground, feature_cache, crops_dir, explain, explain_steps, device, source
    )


def merge_shards(parts: list[Path], out: Path) -> int:
    """Interleave rank outputs back into input order (rank r holds posts r, r + world, ...); returns lines."""
    from contextlib import ExitStack

    written = 0
    with ExitStack() as stack, open(out, "w", encoding="utf-8") as dst:
        handles = [stack.enter_context(open(p, encoding="utf-8")) for p in parts]
        while True:
            line = handles[written % len(handles)].readline()
            if not line:
                break
            dst.write(line)
            written += 1
    return written


# ----------------------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.predict", description="Predict relations for new posts (JSONL in, JSONL out)."
    )
    parser.add_argument("posts", type=Path, help="JSONL file, one post per line (see the module docstring)")
    parser.add_argument("--model", required=True, type=Path, help="checkpoint folder (config.json + weights)")
    parser.add_argument("--out", required=True, type=Path, help="predictions JSONL (written when complete)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--max-line-bytes",
        type=int,
        default=DEFAULT_MAX_LINE_BYTES,
        help=f"longest input line; a longer one is that line's error (default {DEFAULT_MAX_LINE_BYTES})",
    )
    parser.add_argument(
        "--grounder", help="GroundingDINO folder or cached hub id, or 'cam' (default: CAM fallback)"
    )
    parser.add_argument("--no-grounding", action="store_true", help="do not ground (no crops, no objects)")
    parser.add_argument(
        "--explain", action="store_true", help="add attention and attribution summaries (slow)"
    )
    parser.add_argument(
        "--explain-steps",
        type=int,
        help="integrated-gradients steps for --explain (default: the app's, explain.bundle.DEFAULT_SETTINGS)",
    )
    parser.add_argument(
        "--feature-cache", type=Path, help="folder to keep EfficientNet features between runs"
    )
    parser.add_argument("--crops-dir", type=Path, help="keep the grounded crops here (default: not kept)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), world
    return 0, 1


def _publish(done: Path, out: Path, posts: Path) -> None:
    """Rename the finished output over `out`, checked again right before (model.safe_write: never the input, a
    folder or a FIFO)."""
    check_target(out, sources=[posts])
    os.replace(done, out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.posts.is_file():
        print(f"error: {args.posts}: no such input file", file=sys.stderr)
        return CLI_ERROR
    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return CLI_ERROR
    try:  # never onto the input (nor a link to it), a folder or a FIFO
        check_target(args.out, sources=[args.posts])
    except UnsafeTargetError as e:
        print(f"error: {e}", file=sys.stderr)
        return CLI_ERROR
    rank, world = _distributed()
    device = args.device
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    try:
        predictor = build_predictor(
            args.model,
            grounder=args.grounder,
            ground=not args.no_grounding,
            explain=args.explain,
            feature_cache=args.feature_cache,
            crops_dir=args.crops_dir,
            device=device,
            source=str(args.posts),
            explain_steps=args.explain_steps,
        )
    except (OSError, ValueError) as e:  # a missing/broken checkpoint or grounder: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return CLI_ERROR
    if args.max_line_bytes < 1:
        print("error: --max-line-bytes must be at least 1", file=sys.stderr)
        return CLI_ERROR
    total = sum(1 for _ in numbered_lines(args.posts, args.max_line_bytes))
    mine = len(range(rank, total, world))
    part = args.out.with_name(f".{args.out.name}.part{rank}-of-{world}")
    part.parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    with open(part, "w", encoding="utf-8") as out:
        stream = predict_stream(
            predictor,
            numbered_lines(args.posts, args.max_line_bytes),
            args.batch_size,
            args.posts.resolve().parent,
            rank,
            world,
            progress=not args.quiet,
            total=mine,
        )
        for result in stream:
            if "error" in result:
                failed += 1
                print(f"error: {result['error']}", file=sys.stderr)
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
    if world > 1:
        import torch.distributed as dist

        counts = [torch.tensor([failed])]
        dist.all_reduce(counts[0])
        failed = int(counts[0])
        dist.barrier()
        if rank == 0:
            parts = [args.out.with_name(f".{args.out.name}.part{r}-of-{world}") for r in range(world)]
            merged = args.out.with_name(f".{args.out.name}.merging")
            merge_shards(parts, merged)
            _publish(merged, args.out, args.posts)
            for p in parts:
                p.unlink()
        dist.barrier()
        dist.destroy_process_group()
    else:
        _publish(part, args.out, args.posts)
    if rank == 0:
        print(
            f"{total - failed} of {total} posts predicted -> {args.out}"
            + (f"; {failed} failed (listed above and in the output)" if failed else ""),
            file=sys.stderr,
        )
    return SOME_LINES_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
