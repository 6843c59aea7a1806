"""Patch extraction on a real tiny run whose top-k maps are overwritten with known patterns.

Expected boxes come from torchvision's own Resize + CenterCrop applied to a grid of pixel
coordinates, not from ``Preprocessing.crop_box``: they check that resize and crop are undone.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torchvision.transforms import v2

from neuroscribe import store as st
from neuroscribe.errors import NeuroscribeError
from neuroscribe.extraction import unit_quantiles
from neuroscribe.models import Preprocessing
from neuroscribe.patches import (
    PatchConfig,
    extract_patches,
    load_layer_patches,
    load_unit_patches,
)
from neuroscribe.patches import cut as extract_module
from neuroscribe.patches.geometry import PAD_RGB

from .helpers import (
    SIZES,
    TINY_VIT,
    build_tiny_run,
    hot_square,
    image_size,
    index_frame,
    set_samples,
    set_unit,
)

MAP = (16, 16)  # tiny_cnn conv2 over a 32 px input: each cell is 2 x 2 input pixels
EXACT = PatchConfig(margin=0.0, min_side=0.0, crop_size=64)


def _prep(store: str) -> Preprocessing:
    return Preprocessing(**st.RunStore(store).attrs()["preprocessing"])


def input_pixel_centres(width: int, height: int, prep: Preprocessing):
    """Centres (original px) of the model input's columns and rows, and the input pixel's size."""
    xs = torch.arange(width, dtype=torch.float64) + 0.5
    ys = torch.arange(height, dtype=torch.float64) + 0.5
    grid = torch.stack([xs.expand(height, width), ys[:, None].expand(height, width)])
    out = v2.CenterCrop(prep.input_size)(v2.Resize(prep.resize_size, antialias=False)(grid))
    cx, cy = out[0, 0].numpy(), out[1, :, 0].numpy()
    return cx, cy, cx[1] - cx[0], cy[1] - cy[0]


def expected_footprint(store: str, image_id: int, rows, cols) -> tuple[int, int, int, int]:
    """The original pixels whose centres fall inside map cells rows x cols (exclusive ends)."""
    width, height = image_size(store, image_id)
    cx, cy, sx, sy = input_pixel_centres(width, height, _prep(store))
    per_cell = _prep(store).input_size // MAP[0]
    left, right = cx[cols[0] * per_cell] - sx / 2, cx[cols[1] * per_cell - 1] + sx / 2
    top, bottom = cy[rows[0] * per_cell] - sy / 2, cy[rows[1] * per_cell - 1] + sy / 2
    px, py = np.arange(width) + 0.5, np.arange(height) + 0.5
    inside_x = np.flatnonzero((px > left) & (px < right))
    inside_y = np.flatnonzero((py > top) & (py < bottom))
    return (inside_x[0], inside_y[0], inside_x[-1] + 1, inside_y[-1] + 1)


SQUARES = [((3, 9), (4, 11)), ((6, 13), (2, 6)), ((0, 4), (5, 14)), ((9, 16), (9, 15)), ((2, 12), (2, 12)), ((5, 8), (10, 13))]


def test_hot_square_yields_exactly_its_footprint(tiny_run):
    set_samples(tiny_run, "conv2", 0.5)  # every unit's threshold: halfway between square and background
    for unit, (rows, cols) in enumerate(SQUARES):
        set_unit(tiny_run, "conv2", unit, [unit], [hot_square(MAP, rows, cols)])
    summary = extract_patches(tiny_run, "conv2", EXACT, units=list(range(len(SQUARES))))
    assert summary["patches"] == len(SQUARES) and summary["fallback"] == 0
    index = index_frame(tiny_run)
    for unit, (rows, cols) in enumerate(SQUARES):
        [patch] = load_unit_patches(tiny_run, "conv2", unit)
        assert patch.image_id == unit and patch.rank == 0 and not patch.fallback
        assert patch.box == expected_footprint(tiny_run, unit, rows, cols), (unit, SIZES[unit])
        # the crop is the image's square window around the box, resized
        x0, y0, x1, y1 = patch.window
        assert x1 - x0 == y1 - y0 == max(patch.box[2] - patch.box[0], patch.box[3] - patch.box[1])
        image = Image.open(index.loc[unit, "path"]).convert("RGB")
        if x0 >= 0 and y0 >= 0 and x1 <= image.width and y1 <= image.height:
            expected = image.crop(patch.window).resize((64, 64), Image.Resampling.BICUBIC)
            np.testing.assert_array_equal(np.asarray(patch.crop), np.asarray(expected))
        # the mask spans the box, in crop coordinates
        scale = 64 / (x1 - x0)
        ys, xs = np.nonzero(patch.mask)
        want = [(patch.box[0] - x0) * scale, (patch.box[1] - y0) * scale, (patch.box[2] - x0) * scale, (patch.box[3] - y0) * scale]
        np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], want, atol=1.0)


def test_square_at_the_map_edge_stops_where_the_model_view_ends(tiny_run):
    set_samples(tiny_run, "conv2", 0.5)
    set_unit(tiny_run, "conv2", 0, [0], [hot_square(MAP, (4, 8), (12, 16))])  # touches the right edge
    extract_patches(tiny_run, "conv2", EXACT, units=[0])
    [patch] = load_unit_patches(tiny_run, "conv2", 0)
    width, height = image_size(tiny_run, 0)
    cx, _, sx, _ = input_pixel_centres(width, height, _prep(tiny_run))
    view_right = cx[-1] + sx / 2
    assert view_right < width - 1  # the model never saw the image's right strip
    assert patch.box[2] == np.flatnonzero(np.arange(width) + 0.5 < view_right)[-1] + 1


def test_margin_grows_the_box_and_pad_fit_greys_outside_it(tiny_run):
    set_samples(tiny_run, "conv2", 0.5)
    set_unit(tiny_run, "conv2", 0, [0], [hot_square(MAP, (4, 8), (4, 12))])
    cfg = PatchConfig(margin=0.25, min_side=0.0, crop_size=64, fit="pad")
    extract_patches(tiny_run, "conv2", cfg, units=[0])
    [patch] = load_unit_patches(tiny_run, "conv2", 0)
    x0, y0, x1, y1 = expected_footprint(tiny_run, 0, (4, 8), (4, 12))
    dx, dy = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
    assert patch.box == (np.floor(x0 - dx), np.floor(y0 - dy), np.ceil(x1 + dx), np.ceil(y1 + dy))
    crop = np.asarray(patch.crop)
    assert patch.box[2] - patch.box[0] > patch.box[3] - patch.box[1]  # wide box: grey bands above and below
    assert (crop[0] == PAD_RGB).all() and (crop[-1] == PAD_RGB).all()
    assert not (crop[32] == PAD_RGB).all()


def test_unit_that_never_fires_gets_no_patches(tiny_run):
    set_unit(tiny_run, "relu2", 5, [0, 1, 2, 3], [np.zeros(MAP)] * 4)
    summary = extract_patches(tiny_run, "relu2", PatchConfig(), units=[4, 5])
    assert summary["inactive"] == 1
    assert load_unit_patches(tiny_run, "relu2", 5) == []
    ids = st.RunStore(tiny_run).arrays("r")["patches/relu2/image_id"][5]
    assert (ids == -1).all()
    assert len(load_unit_patches(tiny_run, "relu2", 4)) > 0


def test_weak_map_falls_back_to_its_own_mid_range(tiny_run):
    set_samples(tiny_run, "conv2", 0.5)
    weak = hot_square(MAP, (3, 9), (4, 11), value=0.3)  # fires, but never reaches the 0.5 threshold
    set_unit(tiny_run, "conv2", 0, [0, 1], [hot_square(MAP, (3, 9), (4, 11)), weak])
    extract_patches(tiny_run, "conv2", EXACT, units=[0])
    strong, fallback = load_unit_patches(tiny_run, "conv2", 0)
    assert not strong.fallback and strong.threshold == pytest.approx(0.5)
    assert fallback.fallback and fallback.threshold == pytest.approx(0.15)
    # halfway between the square's value and the background: again exactly its footprint
    assert fallback.box == expected_footprint(tiny_run, 1, (3, 9), (4, 11))


def test_saturated_plateau_gives_its_footprint_not_a_sliver(tiny_run):
    set_samples(tiny_run, "conv2", 5.999)  # ReLU6-like: the dataset quantile sits at the cap
    set_unit(tiny_run, "conv2", 0, [0], [hot_square(MAP, (3, 9), (4, 11), value=6.0)])
    extract_patches(tiny_run, "conv2", EXACT, units=[0])
    [patch] = load_unit_patches(tiny_run, "conv2", 0)
    assert not patch.fallback and patch.threshold == pytest.approx(3.0)
    assert patch.box == expected_footprint(tiny_run, 0, (3, 9), (4, 11))


def test_otsu_thresholds_each_unit_from_its_own_maps(tiny_run):
    set_samples(tiny_run, "conv2", 100.0)  # a dataset quantile no map reaches: Otsu must not use it
    rows, cols = (2, 10), (3, 9)
    set_unit(tiny_run, "conv2", 0, [0, 2], [hot_square(MAP, rows, cols, 4.0), hot_square(MAP, (5, 9), (5, 9), 4.0)])
    extract_patches(tiny_run, "conv2", EXACT.model_copy(update={"method": "otsu"}), units=[0])
    first, _ = load_unit_patches(tiny_run, "conv2", 0)
    assert not first.fallback and 0 < first.threshold < 4
    x0, y0, x1, y1 = expected_footprint(tiny_run, 0, rows, cols)
    # the threshold sits somewhere between the two levels: the footprint, give or take the ramp's pixels
    assert first.box[0] <= x0 + 2 and first.box[2] >= x1 - 2 and first.box[1] <= y0 + 2 and first.box[3] >= y1 - 2
    assert first.box[0] >= x0 - 2 and first.box[2] <= x1 + 2 and first.box[1] >= y0 - 2 and first.box[3] <= y1 + 2


def _count_loads(monkeypatch) -> Counter:
    loads: Counter[str] = Counter()
    real = extract_module.load_image

    def counting(path, options=None, **limits):
        loads[path] += 1
        return real(path, options, **limits)

    monkeypatch.setattr(extract_module, "load_image", counting)
    return loads


def test_rerun_is_cached_by_content_and_config_change_recomputes(tiny_run, monkeypatch):
    loads = _count_loads(monkeypatch)
    cfg = PatchConfig(crop_size=32)
    first = extract_patches(tiny_run, "relu2", cfg)
    topk_ids = st.RunStore(tiny_run).arrays("r")["topk/relu2/image_id"][:]
    assert first["units"] == 16 and not first["cached"]
    assert set(loads.values()) == {1}  # each image once, however many units hold it
    assert len(loads) == len(np.unique(topk_ids[topk_ids >= 0]))
    before = st.RunStore(tiny_run).arrays("r")["patches/relu2/boxes"][:]

    loads.clear()
    again = extract_patches(tiny_run, "relu2", cfg)
    assert again["cached"] and again["patches"] == first["patches"] and not loads

    changed = extract_patches(tiny_run, "relu2", cfg.model_copy(update={"margin": 0.5}))
    assert not changed["cached"] and changed["key"] != first["key"] and loads
    after = st.RunStore(tiny_run).arrays("r")["patches/relu2/boxes"][:]
    ok = np.isfinite(before)
    assert (after[ok] != before[ok]).any() and (after[ok][0::4] <= before[ok][0::4]).all()  # lefts moved out


def test_slices_round_out_to_blocks_resume_and_refuse_unfinished_reads(tiny_run, monkeypatch):
    monkeypatch.setattr(extract_module, "BLOCK_UNITS", 4)
    cfg = PatchConfig(crop_size=32, patches_per_unit=2)
    part = extract_patches(tiny_run, "relu2", cfg, units=[1, 6])
    assert part["units"] == 8  # units 0-3 and 4-7: whole blocks
    ids = st.RunStore(tiny_run).arrays("r")["patches/relu2/image_id"][:]
    assert (ids[:8] != -2).all() and (ids[8:] == -2).all()
    with pytest.raises(NeuroscribeError, match="not computed yet"):
        list(load_layer_patches(tiny_run, "relu2", block_units=8))
    rest = extract_patches(tiny_run, "relu2", cfg)
    assert rest["units"] == 8
    blocks = list(load_layer_patches(tiny_run, "relu2", block_units=8))
    assert [b.units.tolist() for b in blocks] == [list(range(8)), list(range(8, 16))]
    assert blocks[0].crops.shape == (8, 2, 32, 32, 3)
    topk = st.RunStore(tiny_run).arrays("r")["topk/relu2/image_id"][:]
    for block in blocks:
        for i, unit in enumerate(block.units):
            patches = block.unit_patches(i)
            assert [p.image_id for p in patches] == [topk[unit, p.rank] for p in patches]
            assert [p.rank for p in patches] == sorted(p.rank for p in patches)


def _scipy_upsample(unit_map: np.ndarray, crop_box, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear map values at every original pixel centre inside the crop box (scipy, edges clamped)."""
    left, top, right, bottom = crop_box
    px, py = np.arange(width) + 0.5, np.arange(height) + 0.5
    px, py = px[(px >= left) & (px < right)], py[(py >= top) & (py < bottom)]
    u = (px - left) / ((right - left) / unit_map.shape[1]) - 0.5
    v = (py - top) / ((bottom - top) / unit_map.shape[0]) - 0.5
    vv, uu = np.meshgrid(v, u, indexing="ij")
    return ndimage.map_coordinates(unit_map.astype(np.float64), [vv, uu], order=1, mode="nearest"), px, py


def check_patches_cover_the_peak(store: str, layer: str) -> None:
    """Every patch holds its upsampled map's peak, and is cut at min(unit threshold, map mid-range)."""
    extract_patches(store, layer, PatchConfig(crop_size=32))
    group = st.RunStore(store).arrays("r")
    maps, ids = group[f"topk/{layer}/maps"][:], group[f"topk/{layer}/image_id"][:]
    prep = _prep(store)
    quantiles = unit_quantiles(store, layer, 0.995)
    n = 0
    for unit in range(maps.shape[0]):
        for patch in load_unit_patches(store, layer, unit):
            width, height = image_size(store, patch.image_id)
            up, px, py = _scipy_upsample(maps[unit, patch.rank], prep.crop_box(width, height), width, height)
            r, c = np.unravel_index(np.argmax(up), up.shape)
            assert ids[unit, patch.rank] == patch.image_id
            assert patch.box[0] <= px[c] <= patch.box[2] and patch.box[1] <= py[r] <= patch.box[3]
            assert patch.fallback == (up.max() <= quantiles[unit]) and patch.mask.any()
            assert patch.threshold == pytest.approx(min(quantiles[unit], (up.max() + up.min()) / 2), rel=1e-5)
            n += 1
    assert n > maps.shape[0]


def test_real_maps_patch_covers_the_peak(tiny_run):
    check_patches_cover_the_peak(tiny_run, "relu2")


def test_vit_token_maps(tmp_path):
    store = build_tiny_run(tmp_path, model=TINY_VIT, layers=("encoder.layers.encoder_layer_1.mlp.1",))
    check_patches_cover_the_peak(store, "encoder.layers.encoder_layer_1.mlp.1")


def test_linear_units_use_the_whole_image(tiny_run):
    summary = extract_patches(tiny_run, "fc", PatchConfig(crop_size=32))
    assert summary["patches"] > 0
    for patch in load_unit_patches(tiny_run, "fc", 0):
        width, height = image_size(tiny_run, patch.image_id)
        assert patch.box == (0, 0, width, height)
        side = max(width, height)
        inside = patch.mask.mean()
        assert inside == pytest.approx(width * height / side**2, abs=0.08)


def test_bad_inputs_name_the_fix(tiny_run):
    with pytest.raises(NeuroscribeError, match="not extracted"):
        extract_patches(tiny_run, "nope", PatchConfig())
    with pytest.raises(NeuroscribeError, match="no patches"):
        load_unit_patches(tiny_run, "conv2", 0)
    with pytest.raises(NeuroscribeError, match="units must lie"):
        extract_patches(tiny_run, "conv2", PatchConfig(), units=[99])


def _drop_patches(store: str, layer: str) -> None:
    st.RunStore(store).remove_patches(layer)


@pytest.mark.parametrize("layer", ["relu2", "fc"])
def test_each_image_is_decoded_once_per_call_across_blocks(tiny_run, monkeypatch, layer):
    """Many blocks of units share top images (a final layer's whole images above all): one decode each."""
    cfg = PatchConfig(crop_size=32)
    whole = extract_patches(tiny_run, layer, cfg)  # one block: the reference arrays
    reference = _stored(tiny_run, layer)
    monkeypatch.setattr(extract_module, "BLOCK_UNITS", 1)  # one block per unit: the most sharing
    loads = _count_loads(monkeypatch)
    _drop_patches(tiny_run, layer)
    blocked = extract_patches(tiny_run, layer, cfg)
    assert not blocked["cached"] and blocked["patches"] == whole["patches"]
    topk_ids = st.RunStore(tiny_run).arrays("r")[f"topk/{layer}/image_id"][:]
    assert set(loads.values()) == {1} and len(loads) == len(np.unique(topk_ids[topk_ids >= 0]))
    assert blocked["images_loaded"] == len(loads)
    for name, expected in reference.items():
        np.testing.assert_array_equal(_stored(tiny_run, layer)[name], expected)


def _stored(store: str, layer: str) -> dict[str, np.ndarray]:
    """The layer's patches as readers see them (a linear layer's crops gathered from its per-image rows)."""
    [block] = list(load_layer_patches(store, layer, block_units=1 << 20))
    return {name: getattr(block, name) for name in ("crops", "masks", "boxes", "image_id")}


def test_the_decoded_image_cache_is_bounded_and_decodes_again_past_it(tiny_run, monkeypatch):
    cfg = PatchConfig(crop_size=32)
    extract_patches(tiny_run, "relu2", cfg)
    reference = st.RunStore(tiny_run).arrays("r")["patches/relu2/crops"][:]
    monkeypatch.setattr(extract_module, "BLOCK_UNITS", 1)
    monkeypatch.setattr(extract_module, "IMAGE_CACHE_BYTES", 1)  # keeps only the last image
    loads = _count_loads(monkeypatch)
    _drop_patches(tiny_run, "relu2")
    extract_patches(tiny_run, "relu2", cfg)
    assert max(loads.values()) > 1  # evicted images come back by decoding, not from memory
    np.testing.assert_array_equal(st.RunStore(tiny_run).arrays("r")["patches/relu2/crops"][:], reference)


@pytest.mark.parametrize("units_per_task", [1, 3, 4, 6, 9, 16])
def test_explain_tasks_write_disjoint_patch_shards(tiny_run, monkeypatch, units_per_task):
    """However ``units_per_task`` is set, no shard of patches/<layer> is written by two tasks."""
    from neuroscribe.explanation import unit_blocks

    monkeypatch.setattr(extract_module, "BLOCK_UNITS", 4)
    writers: dict[int, set[int]] = {}
    real = extract_module._write_block
    cfg = PatchConfig(crop_size=16, patches_per_unit=1)
    tasks = unit_blocks(16, units_per_task)
    assert sorted(u for t in tasks for u in t) == list(range(16))
    for task, units in enumerate(tasks):
        def recording(sub, start, arrays, task=task):
            writers.setdefault(start, set()).add(task)
            return real(sub, start, arrays)

        # concurrent tasks all start on an empty layer: each runs here on a fresh one
        if task:
            _drop_patches(tiny_run, "relu2")
        monkeypatch.setattr(extract_module, "_write_block", recording)
        extract_patches(tiny_run, "relu2", cfg, units=units)
    assert sorted(writers) == [0, 4, 8, 12] and all(len(t) == 1 for t in writers.values())


def test_patch_images_are_read_under_the_extraction_pixel_limit(tmp_path):
    # the patch stage decodes top images again: with the run's limit, an image over it is skipped
    # there too (no patch) rather than decoded at any size
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(path)
    within = extract_module._DecodedImages({0: str(path)}, None, 1 << 20, max_image_pixels=64 * 48)
    over = extract_module._DecodedImages({0: str(path)}, None, 1 << 20, max_image_pixels=64 * 48 - 1)
    assert within._decode(0).size == (64, 48)
    assert over._decode(0) is None
