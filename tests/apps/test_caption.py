"""Captioning: composed scenes and clips, readers, metrics, models, training, CLI, targets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.apps.caption import (
    CaptionConfig,
    Captioner,
    NearestNeighbourCaptioner,
    Vocabulary,
    baseline_comparisons,
    bleu,
    cider_d,
    compare_bleu4,
    compare_captioners,
    fact_accuracy,
    synthetic_data,
)
from rnnkit.apps.caption.captioner import build_model, check_inputs
from rnnkit.apps.caption.experiment import FULL_SIZES
from rnnkit.apps.caption.models import (
    AttentionDecoder,
    CaptionModel,
    ConvEncoder,
    MotionEncoder,
    SoftAttention,
    VideoEncoder,
    stack_motion,
)
from rnnkit.cli import main
from rnnkit.core.decoding import beam_search, greedy_search
from rnnkit.data import vision
from rnnkit.errors import UserError

needs_fashion = pytest.mark.skipif(
    not vision.fashion_available(), reason=f"install Fashion-MNIST: {vision.INSTALL_FASHION}"
)


@pytest.fixture(scope="module")
def banks():
    return vision.load_item_bank("train"), vision.load_item_bank("test")


@pytest.fixture(scope="module")
def tiny_data():
    return synthetic_data("image", train_size=48, test_size=16, seed=0)


@pytest.fixture(scope="module")
def tiny_captioner(tiny_data):
    config = CaptionConfig(
        epochs=4,
        lr=1e-2,
        batch_size=16,
        hidden_size=48,
        feature_size=32,
        summary_size=48,
        embed_size=16,
    )
    return Captioner(config).fit(tiny_data.train_inputs, tiny_data.train_captions)


# ---------------------------------------------------------------------------- data


@needs_fashion
def test_banks_hold_real_items_and_digits_split_apart(banks):
    train, test = banks
    assert set(train.classes) == set(vision.FASHION_NAMES + vision.DIGIT_NAMES)
    assert len(train.images) == 60000 + 4000 and len(test.images) == 10000 + 1000
    digits_train = {train.images[i].tobytes() for i, n in enumerate(train.names) if n.isdigit()}
    digits_test = {test.images[i].tobytes() for i, n in enumerate(test.names) if n.isdigit()}
    assert not digits_train & digits_test  # test scenes use unseen digit images


def test_scenes_are_reproducible_and_captions_state_their_facts(banks):
    train, _ = banks
    first = vision.compose_scenes(train, 60, "train", seed=3)
    again = vision.compose_scenes(train, 60, "train", seed=3)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert {len(s.objects) for s in first} == {1, 2, 3, 4}
    for scene in first:
        assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
        assert len(set(scene.captions)) >= 3  # differently worded
        for caption in scene.captions:
            assert vision.parse_caption(caption, train.classes) == scene.facts


def test_two_object_relation_matches_the_pixels(banks):
    train, _ = banks
    for scene in vision.compose_scenes(train, 80, "train", seed=1, object_counts=(2,)):
        a, b = sorted(scene.objects, key=lambda o: o.cell)
        relation = scene.facts["relations"][0]
        # Brightness in the cells: where the facts say the objects are, there are pixels.
        for o in (a, b):
            r, c = o.cell
            assert scene.image[r * 32 : r * 32 + 32, c * 32 : c * 32 + 32].max() > 60
        assert (" left of " in relation) == (a.cell[0] == b.cell[0])


def test_compositional_split_holds_unseen_pairs_of_items(banks):
    train, test = banks
    classes = train.classes

    def pairs(names):
        return {(a, b) for a in names for b in names if vision.is_held_out(a, b, classes)}

    train_scenes = vision.compose_scenes(train, 300, "train", seed=0)
    assert not any(pairs([o.name for o in s.objects]) for s in train_scenes)
    test_scenes = vision.compose_scenes(test, 100, "test", seed=0)
    assert all(pairs([o.name for o in s.objects]) for s in test_scenes)
    assert not any(
        pairs([n for _, n, _ in c.motions])
        for c in vision.compose_clips(train, 100, "train", seed=0)
    )
    assert all(
        pairs([n for _, n, _ in c.motions]) for c in vision.compose_clips(test, 30, "test", seed=0)
    )
    # A fifth of the pairs is held out, 3-4 partners for every class, split into disjoint
    # validation and test pairs; test scenes hold test pairs only. Every phrase is seen.
    validation_pairs = vision.held_out_pairs(classes, "validation")
    test_pairs = vision.held_out_pairs(classes, "test")
    held_out = validation_pairs + test_pairs
    assert (len(validation_pairs), len(test_pairs)) == (18, 20)  # 38 of 190 pairs
    assert not set(validation_pairs) & set(test_pairs)
    assert all(3 <= sum(c in pair for pair in held_out) <= 4 for c in classes)
    for scene in test_scenes:
        names = [o.name for o in scene.objects]
        assert {vision.held_out_split(a, b, classes) for a, b in pairs(names)} == {"test"}
    seen_phrases = {
        o.words for s in vision.compose_scenes(train, 2000, "train", 1) for o in s.objects
    }
    assert {o.words for s in test_scenes for o in s.objects} <= seen_phrases


def test_validation_split_holds_unseen_pairs_from_training_images(banks):
    train, _ = banks
    validation = synthetic_data("video", 8, 20, seed=0, evaluate_on="validation")
    test = synthetic_data("video", 8, 20, seed=0)
    for facts in validation.test_facts:
        names = [item.split()[1] for item in facts["objects"]]
        assert vision.held_out_split(*names, train.classes) == "validation"
    for facts in test.test_facts:
        names = [item.split()[1] for item in facts["objects"]]
        assert vision.held_out_split(*names, train.classes) == "test"
    # The validation pairs' recipe, with item images from the training bank.
    expected = vision.compose_clips(train, 20, "validation", seed=1)
    assert np.array_equal(validation.test_inputs, np.stack([c.frames for c in expected]))


def test_clips_move_their_items_the_way_the_caption_says(banks):
    train, _ = banks
    clips = vision.compose_clips(train, 40, "train", seed=0, frames=6, vary=True)
    single = [c for c in clips if len(c.motions) == 1]
    assert single
    for clip in single:
        weights = clip.frames.sum(axis=-1).astype(float)  # [T, H, W]
        ys, xs = np.arange(64)[:, None], np.arange(64)[None, :]
        centre_y = (weights * ys).sum((1, 2)) / weights.sum((1, 2))
        centre_x = (weights * xs).sum((1, 2)) / weights.sum((1, 2))
        dy, dx = vision.DIRECTIONS[clip.motions[0][2]]
        moved_y, moved_x = centre_y[-1] - centre_y[0], centre_x[-1] - centre_x[0]
        assert np.sign(round(moved_y)) == dy and np.sign(round(moved_x)) == dx
    for clip in clips:
        for caption in clip.captions:
            assert vision.parse_motion_caption(caption, train.classes) == clip.facts


def test_parse_caption_states_nothing_for_nonsense():
    assert vision.parse_caption("the quick brown fox") == {"objects": [], "relations": []}
    wrong = vision.parse_caption("a small red 7 to the left of a large blue bag")
    assert wrong["relations"] == ["small red 7 left of large blue bag"]


# ---------------------------------------------------------------------------- user files


def _save(array, path, mode=None):
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path)
    return path


def test_load_image_handles_modes_and_shapes(tmp_path):
    rng = np.random.default_rng(0)
    gray = _save(rng.integers(0, 255, (30, 50), dtype=np.uint8), tmp_path / "gray.png")
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128  # half-transparent red
    rgba_path = _save(rgba, tmp_path / "rgba.png")
    palette = _save(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), tmp_path / "p.png", "P")
    deep = tmp_path / "deep.png"
    Image.fromarray((rng.integers(0, 65535, (12, 12))).astype(np.uint16)).save(deep)
    huge = _save(np.full((1200, 1600, 3), 200, dtype=np.uint8), tmp_path / "huge.jpg")
    for path in (gray, rgba_path, palette, deep, huge):
        array = vision.load_image(path)
        assert array.shape == (64, 64, 3) and array.dtype == np.uint8
    red = vision.load_image(rgba_path)
    assert 120 <= red[32, 32, 0] <= 135 and red[32, 32, 1] == 0  # composited over black
    wide = vision.load_image(gray)
    assert wide[:8].max() == 0  # 30x50 padded to a square, not stretched


def test_bad_images_are_one_line_user_errors(tmp_path):
    tiny = _save(np.zeros((2, 2, 3), dtype=np.uint8), tmp_path / "tiny.png")
    good = _save(np.full((40, 40, 3), 9, dtype=np.uint8), tmp_path / "good.png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for path, words in (
        (tiny, "2x2 pixels"),
        (truncated, "truncated"),
        (text, "not an image"),
        (tmp_path / "missing.png", "no such"),
    ):
        with pytest.raises(UserError, match=words) as info:
            vision.load_image(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_coco_reader_and_its_errors(tmp_path):
    _save(np.full((40, 40, 3), 9, dtype=np.uint8), tmp_path / "one.png")
    data = {
        "images": [{"id": 7, "file_name": "one.png"}],
        "annotations": [
            {"image_id": 7, "caption": "A Dog, running."},
            {"image_id": 7, "caption": "a dog"},
        ],
    }
    annotations = tmp_path / "captions.json"
    annotations.write_text(json.dumps(data))
    [(path, captions)] = vision.read_coco_captions(annotations, tmp_path)
    assert path.name == "one.png" and captions == ["a dog , running .", "a dog"]
    data["annotations"].append({"image_id": 8, "caption": "x"})
    annotations.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"annotations\[2\]: image_id 8 is not in 'images'"):
        vision.read_coco_captions(annotations, tmp_path)
    annotations.write_text('{"images": [\n  {"id": 1,}]}')
    with pytest.raises(UserError, match="line 2, column"):
        vision.read_coco_captions(annotations, tmp_path)


def test_video_folder_reader_and_empty_video(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    for t in range(3):
        _save(np.full((32, 32, 3), 40 * t, dtype=np.uint8), clip / f"{t:03}.png")
    gif = tmp_path / "moving.gif"
    frames = [Image.fromarray(np.full((32, 32, 3), 50 * t, dtype=np.uint8)) for t in range(4)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    (tmp_path / "captions.csv").write_text("video,caption\nclip,It brightens.\nmoving.gif,x\n")
    items = vision.read_video_folder(tmp_path)
    assert [(p.name, c) for p, c in items] == [("clip", ["it brightens ."]), ("moving.gif", ["x"])]
    video = vision.load_video(clip, frames=6)
    assert video.shape == (6, 64, 64, 3) and video[0].max() < video[-1].max()
    assert vision.load_video(gif, frames=4).shape == (4, 64, 64, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty video folder"):
        vision.load_video(tmp_path / "empty")
    with pytest.raises(UserError, match="ffmpeg"):
        (tmp_path / "x.mp4").write_bytes(b"\0")
        vision.load_video(tmp_path / "x.mp4")


# ---------------------------------------------------------------------------- metrics


def test_bleu_by_hand():
    scores = bleu(["the cat sat on the mat"], [["the cat is on the mat"]])
    assert scores["bleu1"] == pytest.approx(5 / 6)
    assert scores["bleu2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert scores["bleu4"] == 0.0  # no 4-gram in common, no smoothing
    several = bleu(["a red 7", "a blue bag"], [["a red 7"], ["the bag", "a blue bag"]])
    assert several["bleu3"] == pytest.approx(1.0)


def test_compare_bleu4_is_the_corpus_difference_with_a_paired_interval():
    references = [["a red 7", "the red 7"], ["a blue bag"], ["a small green 1"]] * 20
    good = ["a red 7", "a blue bag", "a small green 1"] * 20
    worse = ["a red 1", "a blue bag", "a small green 1"] * 20
    interval = compare_bleu4(good, worse, references)
    expected = bleu(good, references)["bleu4"] - bleu(worse, references)["bleu4"]
    assert interval.estimate == pytest.approx(expected)
    assert 0 < interval.low <= interval.estimate <= interval.high
    assert interval.verdict(higher_is_better=True) == "beats"
    same = compare_bleu4(good, good, references)
    assert (same.low, same.high) == (0.0, 0.0) and same.verdict(higher_is_better=True) == "ties"


def test_cider_d_by_hand():
    # Two items, every n-gram in one item's references only: idf = log 2 for all of them.
    assert cider_d(["a b", "c d"], [["a b"], ["c d"]]) == pytest.approx(5.0)
    # "a x" vs "a b": unigram cosine 1/2, no bigram in common -> (0.5 / 4) * 10 = 1.25.
    assert cider_d(["a x", "c d"], [["a b"], ["c d"]]) == pytest.approx((1.25 + 5.0) / 2)
    assert cider_d(["x y", "z w"], [["a b"], ["c d"]]) == 0.0


def test_fact_accuracy_counts_exact_matches():
    facts = [
        vision.parse_caption("a small red 7 in the top left"),
        vision.parse_caption("a small red 7 to the left of a large blue bag"),
    ]
    predictions = ["a small red 7 at the top left", "a large blue bag left of a small red 7"]
    scores = fact_accuracy(predictions, facts, vision.parse_caption)
    assert scores == {"object_accuracy": 1.0, "relation_accuracy": 0.5, "object_recall": 1.0}
    half = fact_accuracy(["a small red 7 above a large red bag"], facts[1:], vision.parse_caption)
    assert half == {"object_accuracy": 0.0, "relation_accuracy": 0.0, "object_recall": 0.5}


# ---------------------------------------------------------------------------- models


def test_vocabulary_maps_unknown_words():
    vocab = Vocabulary.from_captions([["a red 7", "a blue 7"]])
    assert vocab.decode(vocab.encode("a green 7")) == "a 7"  # <unk> is never written out
    assert vocab.encode("green") == [vocab.index["<unk>"]]


def test_soft_attention_gradcheck_and_weights():
    torch.manual_seed(0)
    attention = SoftAttention(feature_size=3, hidden_size=4, attention_size=5).double()
    features = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    hidden = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    context, alpha = attention(features, attention.key(features), hidden)
    assert torch.allclose(alpha.sum(-1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(context, torch.einsum("nl,nld->nd", alpha, features))
    assert torch.autograd.gradcheck(
        lambda f, h: attention(f, attention.key(f), h)[0], (features, hidden)
    )


def test_teacher_forcing_matches_step_by_step_decoding():
    torch.manual_seed(0)
    model = CaptionModel(ConvEncoder(16, 24), AttentionDecoder(11, 16, 24, 8, 20)).eval()
    images, tokens = torch.rand(3, 3, 64, 64), torch.randint(4, 11, (3, 6))
    logits, alphas = model(images, tokens)
    assert logits.shape == (3, 6, 11) and alphas.shape == (3, 6, 64)
    state = model.start(images)
    for t in range(6):
        log_probs, state = model.step_fn(tokens[:, t], state)
        assert torch.allclose(log_probs, logits[:, t].log_softmax(-1), atol=1e-5)
    # Beam search of width 1 is greedy search.
    greedy = greedy_search(model.step_fn, model.start(images), 1, 2, 8, batch_size=3)
    beams = beam_search(
        model.step_fn, model.start(images), 1, 2, beam_width=1, max_len=8, batch_size=3
    )
    assert [b[0].tokens for b in beams] == greedy


def test_video_encoder_outputs_one_step_per_frame():
    features, summary = VideoEncoder(feature_size=16, summary_size=8)(torch.rand(2, 5, 3, 64, 64))
    assert features.shape == (2, 5, 16) and summary.shape == (2, 8)


def test_stack_motion_puts_frames_and_their_differences_in_channels():
    video = torch.rand(2, 4, 3, 8, 8)
    stacked = stack_motion(video)
    assert stacked.shape == (2, 3 * 7, 8, 8)
    assert torch.equal(stacked[:, :12], video.flatten(1, 2))
    assert torch.allclose(stacked[:, 12:15], video[:, 1] - video[:, 0])
    assert torch.allclose(stacked[:, 18:21], video[:, 3] - video[:, 2])


@pytest.mark.parametrize(("name", "locations"), [("motion", 64), ("recurrent", 64), ("frames", 5)])
def test_video_encoders_give_what_the_decoder_attends_over(name, locations):
    config = CaptionConfig(
        kind="video", video_encoder=name, frames=5, feature_size=16, summary_size=8
    )
    encoder = build_model(config, vocab_size=11).encoder
    features, summary = encoder(torch.rand(2, 5, 3, 64, 64))
    assert features.shape == (2, locations, 16) and summary.shape == (2, 8)


def test_motion_encoder_sees_the_direction_of_motion():
    """Two clips with the same frames in reverse order (opposite motion) must differ in the
    encoder's features, and a clip must not equal its still first frame repeated."""
    torch.manual_seed(0)
    encoder = MotionEncoder(feature_size=16, summary_size=8, frames=4).eval()
    clip = torch.zeros(1, 4, 3, 64, 64)
    for t in range(4):
        clip[0, t, :, 20:30, 10 + 5 * t : 20 + 5 * t] = 1.0  # a square moving right
    still = clip[:, :1].expand(-1, 4, -1, -1, -1)
    forward, _ = encoder(clip)
    backward, _ = encoder(clip.flip(1))
    frozen, _ = encoder(still)
    assert (forward - backward).abs().max() > 1e-3 and (forward - frozen).abs().max() > 1e-3
    with pytest.raises(UserError, match="video of 6 frames: this model reads clips of 4"):
        encoder(torch.rand(1, 6, 3, 64, 64))


def test_video_captioner_trains_saves_and_predicts_from_the_cli(tmp_path, capsys):
    data = synthetic_data("video", train_size=32, test_size=4, seed=0)
    config = CaptionConfig(
        kind="video",
        epochs=3,
        lr=1e-2,
        batch_size=16,
        feature_size=24,
        summary_size=32,
        hidden_size=32,
        embed_size=16,
    )
    captioner = Captioner(config).fit(data.train_inputs, data.train_captions)
    assert captioner.history[-1]["loss"] < captioner.history[0]["loss"]
    captioner.save(tmp_path / "model")
    frames = [Image.fromarray(frame) for frame in data.test_inputs[0]]
    gif = tmp_path / "clip.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    maps = tmp_path / "maps"
    args = ["caption", "predict", "--model", str(tmp_path / "model"), str(gif)]
    assert main([*args, "--attention", str(maps)]) == 0
    caption = capsys.readouterr().out.splitlines()[0].split("\t")[1]
    [alphas] = captioner.attention_maps(vision.load_video(gif)[None], [caption])
    assert alphas.shape == (len(caption.split()) + 1, 64)  # words x 8x8 grid cells
    assert (maps / "clip_gif_attention.png").stat().st_size > 1000


def test_training_lowers_the_loss_and_is_reproducible(tiny_data, tiny_captioner):
    history = tiny_captioner.history
    assert history[-1]["loss"] < history[0]["loss"] - 0.5
    again = Captioner(tiny_captioner.config).fit(tiny_data.train_inputs, tiny_data.train_captions)
    assert [r["loss"] for r in again.history] == [r["loss"] for r in history]


def test_save_load_predict_and_attention(tmp_path, tiny_data, tiny_captioner):
    tiny_captioner.save(tmp_path / "model")
    loaded = Captioner.load(tmp_path / "model")
    images = tiny_data.test_inputs[:4]
    assert loaded.predict(images) == tiny_captioner.predict(images)
    assert loaded.predict(images, beam_width=3) == tiny_captioner.predict(images, beam_width=3)
    captions = loaded.predict(images)
    for caption, alphas in zip(captions, loaded.attention_maps(images, captions), strict=True):
        assert alphas.shape == (len(caption.split()) + 1, 64)
        assert np.allclose(alphas.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(UserError, match="expected inputs of shape"):
        loaded.predict(np.zeros((2, 4, 64, 64, 3), dtype=np.uint8))


def test_no_repeated_ngrams_in_any_caption(tiny_data, tiny_captioner):
    images = tiny_data.test_inputs[:16]

    def repeats_a_pair(caption: str) -> bool:
        pairs = list(zip(caption.split(), caption.split()[1:], strict=False))
        return len(pairs) != len(set(pairs))

    for width in (1, 3):
        # the tiny captioner loops ("in the bottom in the bottom ..."): there is something to block
        assert any(repeats_a_pair(c) for c in tiny_captioner.predict(images, beam_width=width))
        blocked = tiny_captioner.predict(images, beam_width=width, no_repeat_ngram=2)
        assert not any(repeats_a_pair(caption) for caption in blocked)
    # blocking nothing that never repeats: off and a long n-gram decode alike
    assert tiny_captioner.predict(images, beam_width=3, no_repeat_ngram=40) == (
        tiny_captioner.predict(images, beam_width=3)
    )


def test_nearest_neighbour_returns_the_training_caption_of_a_training_image(
    tiny_data, tiny_captioner
):
    nearest = NearestNeighbourCaptioner(tiny_captioner.features)
    nearest.fit(tiny_data.train_inputs, tiny_data.train_captions)
    predicted = nearest.predict(tiny_data.train_inputs[:10])
    assert predicted == [c[0] for c in tiny_data.train_captions[:10]]


# ---------------------------------------------------------------------------- CLI


def test_cli_train_predict_evaluate_quick(tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["caption", "train", "--quick", "--out", str(model), "--train-size", "64"]) == 0
    assert "for 1 epochs" in capsys.readouterr().out
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(np.full((40, 60, 3), 30, dtype=np.uint8), photos / "a.png")
    rows = ",\n".join(f'"{"." * 64}"' for _ in range(64))  # an X pixmap, as icons ship
    xpm = f'/* XPM */\nstatic char *icon[] = {{\n"64 64 1 1",\n". c #5A5A5A",\n{rows}}};\n'
    (photos / "icon.xpm").write_text(xpm)
    (photos / "broken.png").write_text("no")
    (photos / "notes.txt").write_text("not an image")
    assert (
        main(
            [
                "caption",
                "predict",
                "--model",
                str(model),
                str(photos),
                "--beam",
                "2",
                "--no-repeat-ngram",
                "3",
                "--attention",
                str(tmp_path / "maps"),
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert out.startswith("a.png\t") and "skipped" in err and "broken.png" in err
    assert "icon.xpm\t" in out  # Pillow reads it: so does a folder
    assert "1 file(s) that are not images left out (notes.txt)" in err
    assert (tmp_path / "maps" / "a_png_attention.png").stat().st_size > 1000
    assert (
        main(
            [
                "caption",
                "evaluate",
                "--model",
                str(model),
                "--quick",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())["rows"]
    assert {"bleu4", "cider", "object_accuracy"} <= set(rows[0])
    assert main(["caption", "evaluate", "--quick", "--no-repeat-ngram", "3"]) == 2
    assert "needs --model" in capsys.readouterr().err


def test_cli_bad_input_is_exit_status_2(tmp_path, capsys):
    status = main(["caption", "predict", "--model", str(tmp_path / "none"), "x.png"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error:") and err.count("\n") == 1


def test_cli_resume_continues_a_killed_run_bit_for_bit(tmp_path, monkeypatch, capsys):
    """A 3-epoch run killed after its epoch-2 checkpoint, resumed with --resume, ends with
    the same weights as the run that was never interrupted (same lr schedule, data order
    and scheduled-sampling draws)."""
    from rnnkit.engine import Trainer, load_model_state

    def train(out, *extra):
        flags = ["--quick", "--epochs", "3", "--train-size", "32", "--test-size", "8"]
        return main(["caption", "train", *flags, "--out", str(out), *extra])

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert train(straight) == 0
    save_checkpoint = Trainer._save_checkpoint

    def save_then_die_after_epoch_2(self):
        save_checkpoint(self)
        if self.epoch == 2:
            raise KeyboardInterrupt  # the run is killed right after its epoch-2 checkpoint

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_save_checkpoint", save_then_die_after_epoch_2)
        assert train(resumed) == 130
    assert not (resumed / "model.safetensors").exists()
    assert train(resumed, "--resume") == 0
    expected, _ = load_model_state(straight)
    got, _ = load_model_state(resumed)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    history = json.loads((resumed / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    capsys.readouterr()


def test_cli_resume_without_a_checkpoint_is_one_line_error(tmp_path, capsys):
    status = main(["caption", "train", "--quick", "--out", str(tmp_path / "new"), "--resume"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: --resume: no checkpoint") and err.count("\n") == 1


# ---------------------------------------------------------------------------- targets


# The README's compositional test tables (seed 0, `rnnkit caption evaluate [--video]`,
# 2026-12-01, the split whose test pairs are disjoint from the validation pairs): BLEU-4 of the
# attention decoder with beam 3. A rerun must land within 0.02 of them and beat both baselines
# with paired-bootstrap intervals that exclude zero.
README_BLEU4 = {"image": 0.686, "video": 0.640}


def _check_the_readme_table(kind: str) -> None:
    train_size, test_size, epochs = FULL_SIZES[kind]
    data = synthetic_data(kind, train_size=train_size, test_size=test_size, seed=0)
    rows, _, predictions = compare_captioners(
        data, CaptionConfig(kind=kind, epochs=epochs), beam_width=3
    )
    by_model = {(r["model"], r["decoding"]): r for r in rows}
    assert by_model[("attention LSTM", "beam 3")]["bleu4"] == pytest.approx(
        README_BLEU4[kind], abs=0.02
    )
    comparisons = baseline_comparisons(data, predictions, beam_width=3)
    assert [c["verdict"] for c in comparisons] == ["beats", "beats"], comparisons


@pytest.mark.slow
@needs_fashion
def test_image_table_is_the_readmes():
    """4000 scenes x 12 epochs, both decoders: about 40 minutes on one busy core."""
    _check_the_readme_table("image")


@pytest.mark.slow
@needs_fashion
def test_video_table_is_the_readmes():
    """The motion encoder (frames and their differences in one CNN: an 8x8 grid of
    space-time features) with the attention decoder, 3000 clips x 20 epochs, the encoder
    chosen on the validation pairs (`caption choose`)."""
    _check_the_readme_table("video")


def test_encoder_choice_scores_every_encoder_on_the_validation_pairs(monkeypatch):
    from rnnkit.apps.caption import experiment
    from rnnkit.apps.caption.captioner import VIDEO_ENCODERS

    seen = []
    real = experiment.synthetic_data

    def recording(*args, **kwargs):
        seen.append(kwargs.get("evaluate_on"))
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "synthetic_data", recording)
    best, rows = experiment.choose_video_encoder(sizes=(16, 8, 1), beam_width=1)
    assert seen == ["validation"]  # the test pairs are never looked at
    assert [row["encoder"] for row in rows] == list(VIDEO_ENCODERS)
    assert best == max(rows, key=lambda row: row["bleu4"])["encoder"]


# ---------------------------------------------------------------------------- audit fixes


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((40, 64, 3), dtype=np.uint8)
    array[:, :16] = 255  # a white band on the left
    upright = _save(array, tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": a phone held upright
    sideways = Image.fromarray(np.rot90(array, 1).copy())  # stored as the camera saw it
    sideways.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = vision.load_image(tmp_path / "phone.jpg").astype(int)
    assert np.abs(shown - vision.load_image(upright).astype(int)).mean() < 8


def test_float_tiff_is_scaled_by_its_range_not_read_black(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
    Image.fromarray(ramp, mode="F").save(tmp_path / "float.tiff")
    image = vision.load_image(tmp_path / "float.tiff")
    assert image[32, 60, 0] > 200 and image[32, 4, 0] < 30  # dark left, bright right
    assert image.flags.writeable  # a copy: torch warns about read-only arrays


def test_predicting_from_image_files_warns_nothing(tmp_path, tiny_captioner, recwarn):
    path = _save(np.full((64, 64, 3), 90, dtype=np.uint8), tmp_path / "a.png")
    read_only = np.asarray(Image.open(path).convert("RGB"))[None]  # as Pillow gives it
    assert not read_only.flags.writeable
    tiny_captioner.predict(read_only)
    tiny_captioner.predict(vision.load_image(path)[None])
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_a_still_image_given_to_a_video_model_is_repeated_with_a_note(tmp_path, capsys):
    from rnnkit.cli.commands.caption import _predict_inputs

    photo = _save(np.full((40, 40, 3), 90, dtype=np.uint8), tmp_path / "photo.jpg")
    assert vision.is_still_image(photo) and not vision.is_still_image(tmp_path)
    video = vision.load_video(photo, frames=4)
    assert video.shape == (4, 64, 64, 3) and (video == video[0]).all()
    names, inputs = _predict_inputs(photo, "video", frames=4)
    assert names == ["photo.jpg"] and inputs.shape == (1, 4, 64, 64, 3)
    err = capsys.readouterr().err
    assert "still image" in err and "4 identical frames" in err and "ffmpeg" not in err


def test_cli_attention_maps_of_files_sharing_a_stem_are_all_kept(tmp_path, tiny_captioner, capsys):
    tiny_captioner.save(tmp_path / "model")
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(np.full((40, 40, 3), 30, dtype=np.uint8), photos / "photo.png")
    _save(np.full((40, 40, 3), 200, dtype=np.uint8), photos / "photo.jpg")
    maps = tmp_path / "maps"
    argv = ["caption", "predict", "--model", str(tmp_path / "model"), str(photos)]
    assert main([*argv, "--attention", str(maps)]) == 0
    assert f"wrote 2 attention maps to {maps}" in capsys.readouterr().out
    assert sorted(p.name for p in maps.iterdir()) == [
        "photo_jpg_attention.png",
        "photo_png_attention.png",
    ]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker, blocker / "below"):
        assert main([*argv, "--attention", str(target)]) == 2
        out, err = capsys.readouterr()
        assert (
            err == f"rnnkit: error: --attention {target}: {blocker} is a file; expected a folder\n"
        )
        assert out == ""  # refused before any prediction
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "--model", "m", "x.png", "--beam", "0"],
        ["predict", "--model", "m", "x.png", "--beam", "-1"],
        ["evaluate", "--beam", "0"],
        ["train", "--train-size", "0"],
        ["train", "--test-size", "-3"],
        ["train", "--scheduled-sampling", "1.5"],
    ],
)
def test_cli_numeric_options_are_checked_at_parsing(argv, refused_at_parsing):
    option = next(a for a in argv if a.startswith("--") and a != "--model")
    assert f"argument {option}: expected" in refused_at_parsing(["caption", *argv])


def test_loading_another_apps_model_says_which_app_it_holds(tmp_path):
    from rnnkit.engine import save_model

    save_model(tmp_path / "speech", torch.nn.Linear(2, 2), {"n_mels": 40})
    with pytest.raises(UserError, match="speech: holds a speech model, not a captioning model"):
        Captioner.load(tmp_path / "speech")
    save_model(tmp_path / "other", torch.nn.Linear(2, 2), {"size": 3})
    with pytest.raises(UserError, match="config.json names no rnnkit application"):
        Captioner.load(tmp_path / "other")


def test_arrays_of_another_size_are_refused_in_one_line():
    assert check_inputs(np.zeros((2, 64, 64, 3), np.uint8), "image").shape == (2, 64, 64, 3)
    with pytest.raises(UserError, match=r"expected inputs of shape \[N, 64, 64, 3\], got \[1, 32"):
        check_inputs(np.zeros((1, 32, 48, 3), np.uint8), "image")
    with pytest.raises(UserError, match=r"\[N, T, 64, 64, 3\]"):
        check_inputs(np.zeros((1, 64, 64, 3), np.uint8), "video")


def test_training_on_few_captioned_photos_warns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(6):
        _save(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), tmp_path / f"p{i}.png")
        images.append({"id": i, "file_name": f"p{i}.png"})
        annotations.append({"image_id": i, "caption": f"a photo number {i}"})
    coco = tmp_path / "captions.json"
    coco.write_text(json.dumps({"images": images, "annotations": annotations}))
    common = ["caption", "train", "--coco", str(coco), "--images", str(tmp_path)]
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "model")]) == 0
    warning = capsys.readouterr().err
    assert "6 captioned images are few" in warning and "expect generic captions" in warning
