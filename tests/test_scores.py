"""cst.scores: content kept and style taken (0-100 %) - their two ends, a real stylisation between them, the sliders
moving them the way their labels promise, blends, statistics-only styles, the change map and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cst import DEFAULT_MODEL, StyleTransferError, StyleTransferModel, presets
from cst.scores import SCORE_SIZE, Scores, picture_scores, style_reference

PRESET = "starry-night"


@pytest.fixture(scope="module")
def default_model() -> StyleTransferModel:
    return StyleTransferModel.from_pretrained(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def photo(make_image) -> Image.Image:
    return make_image(160, 120, seed=4)


def test_the_photo_itself_keeps_all_content_and_takes_no_style(tiny_model, photo):
    scores = picture_scores(tiny_model, photo, photo.copy(), PRESET)
    assert (scores.content_kept, scores.style_taken) == (100.0, 0.0)
    assert scores.as_dict() == {"content_kept": 100.0, "style_taken": 0.0}
    assert str(scores) == "content kept 100 % · style taken 0 %"


def test_the_style_picture_as_result_keeps_no_content_and_takes_the_style(tiny_model, photo):
    painting = Image.open(presets.get(PRESET).path).convert("RGB")
    scores = tiny_model.scores(photo, painting, PRESET)  # the model's shortcut; the result is stretched to the photo
    # the 0 % of content kept is this picture (up to the reference keeping it at the score size: under 0.05 %)
    assert scores.as_dict()["content_kept"] == 0.0
    assert scores.style_taken > 90.0  # its own statistics, up to the stretch to the photo's shape


def test_a_real_stylisation_lies_strictly_between(default_model, photo):
    result = default_model.stylize(photo, PRESET)
    scores = default_model.scores(photo, result, PRESET)
    assert 5.0 < scores.content_kept < 95.0, scores
    assert 5.0 < scores.style_taken < 95.0, scores


def test_the_sliders_move_the_scores_the_way_their_labels_promise(default_model, photo):
    """The Space's content <-> style control at its two ends (α = 10, β = 0.1 and α = 0.1, β = 10), and the strength
    0 -> 0.5 -> 1: more style taken and less content kept each time."""
    def scores(**sliders) -> Scores:
        return default_model.scores(photo, default_model.stylize(photo, PRESET, **sliders), PRESET)

    content_end, style_end = scores(content_weight=10.0, style_weight=0.1), scores(content_weight=0.1, style_weight=10.0)
    assert style_end.style_taken > content_end.style_taken, (content_end, style_end)
    assert style_end.content_kept < content_end.content_kept, (content_end, style_end)
    by_strength = [scores(strength=s) for s in (0.0, 0.5, 1.0)]
    taken = [s.style_taken for s in by_strength]
    assert taken[0] < taken[1] < taken[2] and taken[2] - taken[0] > 20.0, by_strength


def test_scores_are_measured_at_a_fixed_size(default_model, photo):
    """The same picture at two output sizes scores (nearly) the same: both are fitted to SCORE_SIZE."""
    big_photo = photo.resize((640, 480), Image.LANCZOS)
    result = default_model.stylize(big_photo, PRESET, max_size=320)
    small, large = (default_model.scores(big_photo, result.resize(size, Image.LANCZOS), PRESET)
                    for size in ((320, 240), (640, 480)))
    assert abs(small.content_kept - large.content_kept) < 3.0 and abs(small.style_taken - large.style_taken) < 3.0


def test_a_blend_is_scored_against_the_blend(tiny_model, photo):
    result = tiny_model.stylize(photo, PRESET)
    alone = picture_scores(tiny_model, photo, result, PRESET)
    assert picture_scores(tiny_model, photo, result, [(PRESET, 2.0), ("great-wave", 0.0)]) == alone
    mixed = picture_scores(tiny_model, photo, result, [(PRESET, 0.5), ("great-wave", 0.5)])
    assert mixed != alone


def test_a_style_given_as_statistics_and_a_reference_computed_once(tiny_model, photo, write_image):
    style_path = write_image("style.png", 64, 64, seed=7)
    result = tiny_model.stylize(photo, style_path)
    reference = style_reference(tiny_model, style_path)
    assert reference.size == SCORE_SIZE and len(reference.pictures) == 1
    assert picture_scores(tiny_model, photo, result, reference) == picture_scores(tiny_model, photo, result, style_path)
    stats_only = picture_scores(tiny_model, photo, result, tiny_model.style_stats(style_path))
    assert 0.0 <= stats_only.content_kept <= 100.0 and 0.0 <= stats_only.style_taken <= 100.0
    assert picture_scores(tiny_model, photo, photo, tiny_model.style_stats(style_path)).content_kept == 100.0


def test_a_large_style_picture_is_kept_small_in_its_reference(tiny_model, photo, make_image):
    """A reference keeps its picture at a short side of the score size, not the upload's full size (stretched to
    each photo's working size, a full-size picture cost more than the scoring itself); the scores do not move."""
    big = make_image(1600, 900, seed=5)
    reference = style_reference(tiny_model, big)
    [(kept, _)] = reference.pictures
    assert kept.size == (round(1600 * SCORE_SIZE / 900), SCORE_SIZE)
    result = tiny_model.stylize(photo, big)
    scores = picture_scores(tiny_model, photo, result, reference)
    full = picture_scores(tiny_model, photo, result, type(reference)(((big, 1.0),), reference.stats, reference.size))
    assert abs(scores.content_kept - full.content_kept) < 0.5 and scores.style_taken == full.style_taken
    small = make_image(120, 90, seed=5)  # never upscaled
    assert style_reference(tiny_model, small).pictures[0][0].size == (120, 90)


def test_the_change_map_is_bright_where_the_picture_changed(tiny_model, photo):
    changed = np.asarray(photo).copy()
    changed[:60, :80] = 255 - changed[:60, :80]  # the top-left quarter inverted
    scores = picture_scores(tiny_model, photo, Image.fromarray(changed), PRESET, change_map=True)
    heat = np.asarray(scores.change_map.convert("L"), np.float64)
    assert scores.change_map.size == photo.size  # smaller than SCORE_SIZE: scored at its own size
    assert heat[5:50, 5:70].mean() > heat[70:, 90:].mean() + 50
    assert picture_scores(tiny_model, photo, photo, PRESET).change_map is None  # only when asked for


@pytest.mark.parametrize("style, message", [
    ([(PRESET, 0.0), ("great-wave", 0.0)], "style blend weights must not all be zero"),
    ([(PRESET, "a lot")], "style blend weight must be a number"),
    ("no-such-painting.jpg", "not found"),
])
def test_bad_style_is_a_one_line_error(tiny_model, photo, style, message):
    with pytest.raises(StyleTransferError, match=message) as caught:
        picture_scores(tiny_model, photo, photo, style)
    assert "\n" not in str(caught.value)


def test_bad_result_or_size_is_a_one_line_error(tiny_model, photo, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(StyleTransferError, match="notes.txt is not an image"):
        picture_scores(tiny_model, photo, text, PRESET)
    with pytest.raises(StyleTransferError, match="score size must be an integer"):
        picture_scores(tiny_model, photo, photo, PRESET, size=3)
