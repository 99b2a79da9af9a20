"""Pictures larger than the working size are stylised in tiles that share the whole picture's statistics
(cst/tiling.py): tiles forced small so that the tests stay fast."""
from __future__ import annotations

import numpy as np
import torch
import pytest
from PIL import Image

from cst import tiling
from cst.imageio import pil_to_tensor, tensor_to_pil


@pytest.mark.parametrize("height, width, tile", [(100, 100, 100), (101, 257, 64), (512, 96, 128), (70, 70, 40)])
def test_tiles_cover_the_picture_overlap_and_stay_within_the_tile_size(height, width, tile):
    tiles = tiling.plan_tiles(height, width, tile, margin=16, overlap=8)
    covered = np.zeros((height, width), dtype=int)
    for t in tiles:
        assert t.y1 - t.y0 <= tile and t.x1 - t.x0 <= tile
        assert 0 <= t.cy0 <= t.y0 < t.y1 <= t.cy1 <= height and 0 <= t.cx0 <= t.x0 < t.x1 <= t.cx1 <= width
        assert t.cy0 % 8 == 0 and t.cx0 % 8 == 0  # crops in the network's phase
        assert t.y0 - t.cy0 >= min(16, t.y0) and t.cx1 - t.x1 == min(16, width - t.x1)  # margin where there is room
        covered[t.y0:t.y1, t.x0:t.x1] += 1
    assert covered.min() >= 1
    rows, cols = sorted({(t.y0, t.y1) for t in tiles}), sorted({(t.x0, t.x1) for t in tiles})
    for spans in (rows, cols):
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end - start >= 8  # neighbours overlap at least by `overlap` (they are blended there)


@pytest.mark.parametrize("architecture", ["vgg", "light"])
def test_tiles_given_the_whole_pictures_statistics_reproduce_the_untiled_picture(make_model, make_image,
                                                                                 monkeypatch, architecture):
    """With the exact statistics of the whole picture, the only differences left are the receptive field beyond the
    margin and the blending: under 1/255 on average. The VGG generator's tiles end at the picture's borders, where
    the network pads as in one pass; the light generator's are zero-padded, and see the picture mirrored there, so
    they match one pass away from the picture's borders (the network's receptive field, in the tiny model 16 px)."""
    model = make_model(architecture=architecture)
    photo, style = make_image(160, 128, seed=1), make_image(64, 64, seed=2)
    stylizer = model.prepare(style)
    x = pil_to_tensor(photo)
    whole = np.asarray(tensor_to_pil(stylizer(x)), dtype=np.float32)
    exact = stylizer.statistics(x)
    monkeypatch.setattr(tiling, "picture_statistics", lambda *args, **kwargs: (exact, None))
    tiled = np.asarray(tiling.stylize_tiled(stylizer, photo, tile=64, margin=48, overlap=16), dtype=np.float32)
    assert tiled.shape == whole.shape
    inner = (slice(16, -16), slice(16, -16)) if architecture == "light" else (slice(None), slice(None))
    assert np.abs(tiled - whole)[inner].mean() < 1.0, np.abs(tiled - whole)[inner].mean()
    # without the shared statistics (each tile normalised by its own) the tiles drift apart: the seam the fix removes
    monkeypatch.setattr(tiling, "picture_statistics", lambda *args, **kwargs: (None, None))
    own = np.asarray(tiling.stylize_tiled(stylizer, photo, tile=64, margin=48, overlap=16), dtype=np.float32)
    assert np.abs(own - whole)[inner].mean() > 2 * np.abs(tiled - whole)[inner].mean()


def test_light_tiles_reach_beyond_the_picture_where_it_is_mirrored():
    tiles = tiling.plan_tiles(100, 90, 64, margin=24, overlap=16, align=4, mirror=True)
    for t in tiles:  # a margin on every side, picture or mirror, and crops of the network's multiple
        assert t.y0 - t.cy0 >= 24 and t.cy1 - t.y1 >= 24 and t.x0 - t.cx0 >= 24 and t.cx1 - t.x1 >= 24
        assert t.cy0 % 4 == t.cx0 % 4 == (t.cy1 - t.cy0) % 4 == (t.cx1 - t.cx0) % 4 == 0
    photo = Image.fromarray(np.arange(90 * 100 * 3, dtype=np.uint32).reshape(100, 90, 3).astype(np.uint8) % 251)
    x = pil_to_tensor(photo)
    got = tiling.crop(photo, tiles[0])  # the top-left tile: mirrored above and left of the picture
    assert got.shape[2:] == (tiles[0].cy1 - tiles[0].cy0, tiles[0].cx1 - tiles[0].cx0)
    top, left = -tiles[0].cy0, -tiles[0].cx0
    assert torch.equal(got[:, :, top:, left:], x[:, :, :got.shape[2] - top, :got.shape[3] - left])
    assert torch.equal(got[:, :, top - 5, left:left + 10], x[:, :, 5, :10])  # row -5 is row 5
    assert torch.equal(got[:, :, top:top + 10, left - 3], x[:, :, :10, 3])
    # a picture smaller than the margin is mirrored again and again
    tiny = Image.fromarray(np.arange(6 * 5 * 3, dtype=np.uint8).reshape(5, 6, 3))
    far = tiling.crop(tiny, tiling.Tile(0, 5, 0, 6, -12, 17, -12, 18))
    assert far.shape[2:] == (29, 30)
    assert torch.equal(far[:, :, 12 - 8, 12:18], pil_to_tensor(tiny)[:, :, 0])  # row -8: row 0 again (period 8)


def test_stylize_tiles_above_the_working_size_with_progress_and_no_visible_seams(make_model, make_image):
    model = make_model(architecture="light")
    photo = make_image(300, 200, seed=3)
    calls = []
    result = model.stylize(photo, make_image(64, 64, seed=4), full_resolution=True, tile_size=96,
                           progress=lambda done, total: calls.append((done, total)))
    assert result.size == photo.size  # full resolution: no resize on the way
    tiles = tiling.plan_tiles(200, 300, 96)
    assert calls == [(i + 1, len(tiles)) for i in range(len(tiles))] and len(tiles) >= 6
    assert tiling.seam_score(result, tiles) <= 1.25
    # without full_resolution or tile_size, above the model's max_size (128): the light model runs pictures up to
    # 2048 px in one pass (the picture as tiles with its own statistics would give, in half the work)
    automatic = []
    result = model.stylize(photo, make_image(64, 64, seed=4), max_size=300,
                           progress=lambda done, total: automatic.append((done, total)))
    untiled = tensor_to_pil(model.prepare(make_image(64, 64, seed=4))(pil_to_tensor(photo)))
    assert result.size == photo.size and automatic == [] and np.array_equal(np.asarray(result), np.asarray(untiled))
    # one tile is the picture itself too: one pass with its own statistics (no thumbnail pass)
    one = tiling.stylize_tiled(model.prepare(make_image(64, 64, seed=4)), photo, tile=300,
                               progress=lambda done, total: automatic.append((done, total)))
    assert automatic == [(1, 1)] and np.array_equal(np.asarray(one), np.asarray(untiled))
    # the VGG generator tiles everything above its working size by itself
    vgg, automatic = make_model(architecture="vgg"), []
    vgg.stylize(photo, make_image(64, 64, seed=4), max_size=300, progress=lambda done, total: automatic.append(done))
    assert automatic[-1] == len(tiling.plan_tiles(200, 300, vgg.tile_size())) >= 1


def test_statistics_come_from_the_picture_itself_up_to_2048_px_and_from_a_1024_px_thumbnail_above():
    assert [tiling.thumbnail_size(n) for n in (300, 2048, 2049, 8000)] == [300, 2048, 1024, 1024]


@pytest.mark.parametrize("architecture", ["vgg", "light"])
def test_colour_preservation_in_tiles_uses_the_whole_pictures_luminance(make_model, make_image, architecture):
    """The luminance statistics come from a stylised thumbnail of the whole picture (the light generator's as one
    mirrored tile, cst/tiling.py): every tile's luminance is matched to the same, so no seams."""
    model = make_model(architecture=architecture)
    photo = make_image(200, 160, seed=5)
    kept = model.stylize(photo, make_image(64, 64, seed=6), preserve_color=True, full_resolution=True, tile_size=80)
    # the photo's chroma survives: YIQ I and Q of the result follow the photo's
    yiq = np.array([[0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float32)
    chroma = lambda im: np.asarray(im, dtype=np.float32) @ yiq.T  # noqa: E731
    assert np.abs(chroma(kept) - chroma(photo)).mean() < 3.0
    tiles = tiling.plan_tiles(160, 200, 80)
    assert tiling.seam_score(kept, tiles) <= 1.25
    # the tiles' luminance is the one-pass picture's (matched to the whole picture's statistics, not each tile's:
    # that would be 20-30/255 off here; the light generator's mirrored borders leave about 3/255)
    luminance = lambda im: np.asarray(im, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa
    whole = model.stylize(photo, make_image(64, 64, seed=6), preserve_color=True, full_resolution=True)
    assert np.abs(luminance(kept) - luminance(whole)).mean() < 5.0


def test_seam_score_sees_a_seam():
    """The seam score is 1 on a smooth picture and rises when tiles disagree at their borders."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:128, 0:128]
    smooth = (np.stack([x, y, x + y], -1) + rng.normal(0, 2, (128, 128, 3))).clip(0, 255).astype(np.uint8)
    tiles = tiling.plan_tiles(128, 128, 72, overlap=16)
    assert tiling.seam_score(smooth, tiles) < 1.1
    seamed = smooth.astype(np.int16)
    seamed[:, tiles[1].x0:] += 20  # a colour jump where the second tile starts
    assert tiling.seam_score(np.clip(seamed, 0, 255).astype(np.uint8), tiles) > 1.5


def test_cli_full_resolution_keeps_size_and_colour_profile(tiny_model_dir, write_image, tmp_path):
    from PIL import ImageCms

    from cst.cli import main
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = write_image("photo.jpg", 260, 180, seed=7, icc_profile=icc, quality=95)
    style = write_image("style.png", 64, 64, seed=8)
    out = tmp_path / "out.png"
    assert main(["stylize", str(photo), "--style", str(style), "-o", str(out), "--model", str(tiny_model_dir),
                 "--full-resolution", "--tile-size", "96"]) == 0
    with Image.open(out) as result:
        assert result.size == (260, 180)
        assert result.info.get("icc_profile") == icc


def test_vgg_statistics_pooled_over_tiles_equal_the_whole_pictures(make_model, make_image):
    """The VGG generator's whole-picture statistics are computed tile by tile (bounded memory), exactly."""
    stylizer = make_model().prepare(make_image(64, 64, seed=9))
    x = pil_to_tensor(make_image(200, 136, seed=10))  # not multiples of the tile: partial tiles at the edges
    whole, pooled = stylizer.statistics(x), tiling.pooled_statistics(stylizer, x, tile=64)
    assert set(whole) == set(pooled)
    for layer, (mean, std) in whole.items():
        assert torch.allclose(pooled[layer][0], mean, atol=1e-4, rtol=1e-4), layer
        assert torch.allclose(pooled[layer][1], std, atol=1e-4, rtol=1e-4), layer
