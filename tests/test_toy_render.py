"""Behaviour of the toy-world renderer: layouts, images, and masks that match the pixels."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchmarks.toy import render as render_module
from benchmarks.toy.render import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    Layout,
    background_image,
    coverage,
    render,
    sample_layouts,
)

SIZE = 64
PALETTE = torch.tensor(list(COLOURS.values()))
PLAIN = torch.tensor(list(BACKGROUNDS.values()))


@pytest.fixture(scope="module")
def layout() -> Layout:
    return sample_layouts(96, torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def rendered(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    return render(layout, SIZE)


def one_scene(shapes, colours=None, centres=None, radii=None, background=0, angles=None) -> Layout:
    """A hand-made layout of one scene, no texture."""
    k = len(shapes)
    pad = 3 - k

    def slots(values, fill, dtype):
        return torch.tensor([list(values) + [fill] * pad], dtype=dtype)

    centres = centres or [(0.5, 0.5)] * k
    return Layout(
        present=slots([True] * k, False, torch.bool),
        colour=slots(colours or range(k), 0, torch.long),
        shape=slots([SHAPES.index(s) for s in shapes], 0, torch.long),
        radius=slots(radii or [0.15] * k, 0.1, torch.float32),
        cx=slots([c[0] for c in centres], 0.5, torch.float32),
        cy=slots([c[1] for c in centres], 0.5, torch.float32),
        angle=slots(angles or [0.0] * k, 0.0, torch.float32),
        background=torch.tensor([background]),
        texture=torch.zeros(1),
        texture_freq=torch.ones(1, 2, 2),
        texture_phase=torch.zeros(1, 2),
    )


def erode(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3 x 3 neighbourhood lies in ``mask`` (N, K, S, S)."""
    return -F.max_pool2d(-mask.float(), 3, stride=1, padding=1) > 0.5


def dilate(mask: torch.Tensor, reach: int) -> torch.Tensor:
    return F.max_pool2d(mask.float(), 2 * reach + 1, stride=1, padding=reach) > 0.5


class TestVocabulary:
    def test_six_colours_four_shapes_four_backgrounds(self):
        assert list(COLOURS) == ["red", "green", "blue", "yellow", "purple", "orange"]
        assert len(SHAPES) == 4 and len(set(SHAPES)) == 4
        assert len(BACKGROUNDS) == 4
        assert not set(BACKGROUNDS) & set(COLOURS)

    def test_colours_are_well_separated_from_each_other_and_the_backgrounds(self):
        colours = torch.cat([PALETTE, PLAIN])
        distance = torch.cdist(colours, colours) + torch.eye(len(colours)) * 10
        assert distance.min() > 0.3


class TestSampleLayouts:
    def test_counts_colours_and_slots(self, layout):
        counts = layout.num_objects
        assert set(counts.tolist()) == {1, 2, 3}
        # Objects fill the first slots; colours differ within a scene.
        assert torch.equal(layout.present, torch.arange(3) < counts[:, None])
        for colours, count in zip(layout.colour.tolist(), counts.tolist()):
            assert len(set(colours[:count])) == count
        assert layout.shape.max() < len(SHAPES) and layout.background.max() < len(BACKGROUNDS)
        assert (layout.texture >= 0).all() and (layout.texture <= 0.04).all()

    def test_object_count_bounds(self):
        g = torch.Generator().manual_seed(1)
        assert (sample_layouts(50, g, min_objects=3, max_objects=3).num_objects == 3).all()
        assert (sample_layouts(50, g, min_objects=0, max_objects=0).num_objects == 0).all()
        with pytest.raises(ValueError):
            sample_layouts(5, g, min_objects=2, max_objects=4)

    def test_the_generator_advances_the_same_whatever_the_scenes(self):
        a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        sample_layouts(20, a, min_objects=1, max_objects=1)
        sample_layouts(20, b, min_objects=3, max_objects=3, max_texture=0.0)
        assert torch.equal(a.get_state(), b.get_state())

    def test_same_seed_same_layout(self):
        a = sample_layouts(30, torch.Generator().manual_seed(3))
        b = sample_layouts(30, torch.Generator().manual_seed(3))
        for name in Layout.__dataclass_fields__:
            assert torch.equal(getattr(a, name), getattr(b, name)), name

    def test_shapes_lie_inside_the_image(self, layout):
        alpha = coverage(layout, SIZE)
        border = alpha.clone()
        border[..., 1:-1, 1:-1] = 0
        assert border.max() == 0

    def test_objects_overlap_little(self):
        scenes = sample_layouts(256, torch.Generator().manual_seed(2), min_objects=3)
        _, masks = render(scenes, SIZE)
        whole = coverage(scenes, SIZE) >= 0.5
        visible_share = masks.sum((2, 3)) / whole.sum((2, 3))
        assert visible_share.min() > 0.75
        assert visible_share.mean() > 0.98

    def test_indexing_and_concatenation(self, layout):
        assert len(layout[3]) == 1 and len(layout[2:7]) == 5
        joined = Layout.cat([layout[:4], layout[4:10]])
        assert torch.equal(joined.cx, layout[:10].cx)


class TestRender:
    def test_output_types_and_ranges(self, layout, rendered):
        images, masks = rendered
        assert images.shape == (len(layout), 3, SIZE, SIZE) and images.dtype == torch.float32
        assert masks.shape == (len(layout), 3, SIZE, SIZE) and masks.dtype == torch.bool
        assert images.min() >= 0 and images.max() <= 1

    def test_every_present_object_is_visible_and_absent_ones_are_not(self, layout, rendered):
        area = rendered[1].sum((2, 3))
        assert (area[layout.present] >= 30).all()
        assert (area[~layout.present] == 0).all()

    def test_masks_of_different_objects_never_overlap(self, rendered):
        assert rendered[1].sum(1).max() <= 1

    def test_pixels_inside_a_mask_have_the_objects_colour(self, layout, rendered):
        images, masks = rendered
        colour = PALETTE[layout.colour]  # (N, K, 3)
        pixels = images[:, None]  # (N, 1, 3, S, S)
        off = (pixels - colour[..., None, None]).norm(dim=2)  # (N, K, S, S)
        # Inside (away from edges): exactly the colour, but where the faint tip of a shape on
        # top pokes in without reaching half a pixel.
        assert (off[erode(masks)] < 1e-5).float().mean() > 0.999
        # On edges: at least half the object's, so nearer its colour than the background's.
        off_background = (images - background_image(layout, SIZE)).norm(dim=1)[:, None].expand_as(off)
        assert (off[masks] <= off_background[masks] + 1e-5).float().mean() > 0.999
        assert off[masks].max() < 0.5 * torch.cdist(torch.cat([PALETTE, PLAIN]), torch.cat([PALETTE, PLAIN])).max()

    def test_pixels_away_from_all_objects_are_the_background(self, layout, rendered):
        images, masks = rendered
        away = ~dilate(masks.any(1, keepdim=True), 2).expand(-1, 3, -1, -1)
        background = background_image(layout, SIZE)
        assert away.float().mean() > 0.5
        assert torch.equal(images[away], background[away])
        # The background is its plain colour up to the light texture.
        plain = PLAIN[layout.background][..., None, None].expand_as(background)
        assert (background - plain).abs().max() <= 0.04 + 1e-6
        assert (background - plain).abs().max() > 0.01

    def test_edges_are_anti_aliased(self):
        scenes = sample_layouts(32, torch.Generator().manual_seed(4), max_objects=1, max_texture=0.0)
        images, masks = render(scenes, SIZE)
        colour = PALETTE[scenes.colour[:, 0]][..., None, None]
        plain = PLAIN[scenes.background][..., None, None]
        # Where each pixel lies between the background (0) and the object's colour (1).
        t = ((images - plain) * (colour - plain)).sum(1) / ((colour - plain) ** 2).sum(1)
        between = (t > 0.1) & (t < 0.9)
        assert (between.sum((1, 2)) >= 12).all()
        # Mixed pixels sit on the mask's edge, on either side of it (a star's tip may blur a
        # pixel two away from the mask).
        edge = dilate(masks[:, :1], 2) & ~erode(masks[:, :1])
        assert (between & ~edge[:, 0]).sum() == 0

    def test_a_later_object_covers_an_earlier_one(self):
        scene = one_scene(["circle", "square"], colours=[0, 2], centres=[(0.4, 0.5), (0.6, 0.5)])
        images, masks = render(scene, SIZE)
        whole = coverage(scene, SIZE)[0] >= 0.5
        overlap = whole[0] & whole[1]
        assert overlap.sum() > 50
        assert not masks[0, 0][overlap].any() and masks[0, 1][overlap].all()
        assert torch.equal(masks[0, 1], whole[1])
        assert torch.equal(masks[0, 0], whole[0] & ~whole[1])

    @pytest.mark.parametrize("shape", SHAPES)
    def test_each_shape_covers_about_three_radius_squared(self, shape):
        radius = 0.15
        alpha = coverage(one_scene([shape], radii=[radius]), SIZE)[0, 0]
        area = float(alpha.sum()) / (radius * SIZE) ** 2
        assert 2.75 < area < 3.2
        # Mirror-symmetric left to right, unrotated.
        assert torch.allclose(alpha, alpha.flip(-1), atol=1e-4)

    def test_shapes_differ_and_point_up(self):
        masks = torch.stack([render(one_scene([s]), SIZE)[1][0, 0] for s in SHAPES])
        for i in range(len(SHAPES)):
            for j in range(i):
                assert (masks[i] ^ masks[j]).sum() > 40
        triangle = masks[SHAPES.index("triangle")]
        rows = triangle.sum(1).nonzero().flatten()
        assert triangle[rows[0]].sum() < triangle[rows[-1]].sum()  # narrow top, wide base

    def test_rotation_turns_the_shape(self):
        upright = coverage(one_scene(["square"]), SIZE)
        turned = coverage(one_scene(["square"], angles=[math.pi / 4]), SIZE)
        assert (upright - turned).abs().sum() > 50
        assert abs(float(upright.sum() - turned.sum())) < 0.02 * float(upright.sum())

    def test_the_same_layout_renders_the_same(self, layout, rendered):
        images, masks = render(layout, SIZE)
        assert torch.equal(images, rendered[0]) and torch.equal(masks, rendered[1])

    def test_a_scene_renders_the_same_alone_and_in_a_batch(self, layout, rendered):
        for i in (0, 17, 50):
            image, mask = render(layout[i], SIZE)
            torch.testing.assert_close(image[0], rendered[0][i], atol=1e-5, rtol=0)
            assert (mask[0] != rendered[1][i]).sum() <= 1

    def test_patches_hold_all_of_each_shape(self, layout, monkeypatch):
        patched = coverage(layout, SIZE)
        monkeypatch.setattr(render_module, "_patch_side", lambda layout, size: size)
        torch.testing.assert_close(patched, coverage(layout, SIZE), atol=1e-4, rtol=0)

    def test_other_sizes_render_the_same_scene(self, layout):
        small, _ = render(layout[:8], 32)
        large, _ = render(layout[:8], 128)
        assert (F.avg_pool2d(large, 4) - small).abs().mean() < 0.02

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_cpu_and_cuda_render_the_same(self):
        scenes = sample_layouts(64, torch.Generator().manual_seed(9))
        cpu_images, cpu_masks = render(scenes, SIZE)
        gpu_images, gpu_masks = render(scenes, SIZE, device="cuda")
        torch.testing.assert_close(gpu_images.cpu(), cpu_images, atol=1e-5, rtol=0)
        # Float rounding differs between devices: a mask pixel may flip only where the
        # object's visible share is within rounding of 0.5.
        assert (gpu_masks.cpu() != cpu_masks).sum() <= 2
