"""Behaviour of the toy_shapes split and of the toy world's captions and caption tokenizer."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from benchmarks.models.tiny import clip_tokenizer
from benchmarks.toy.captions import (
    CaptionTokenizer,
    background_phrase,
    caption,
    captions,
    num_captions,
    object_phrase,
    partial_caption,
    training_captions,
)
from benchmarks.toy.render import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    Layout,
    render,
    sample_layouts,
)
from benchmarks.toy.split import ToyShapesSplit

CONF = Path(__file__).resolve().parents[1] / "conf"


def scene(colours, shapes, background) -> Layout:
    k = len(colours)
    layout = sample_layouts(1, torch.Generator().manual_seed(0), min_objects=k, max_objects=k)
    layout.colour[0, :k] = torch.tensor([list(COLOURS).index(c) for c in colours])
    layout.shape[0, :k] = torch.tensor([SHAPES.index(s) for s in shapes])
    layout.background[0] = list(BACKGROUNDS).index(background)
    return layout


class TestCaptions:
    def test_phrases(self):
        assert object_phrase("red", "circle") == "a red circle"
        assert object_phrase("orange", "star") == "an orange star"
        assert object_phrase(2, 1) == "a blue square"
        assert background_phrase("gray") == "on a gray background"
        assert background_phrase(1) == "on a white background"
        with pytest.raises(ValueError):
            object_phrase("pink", "circle")

    def test_captions_list_objects_in_slot_order(self):
        assert caption(scene(["red"], ["circle"], "gray"), 0) == "a red circle on a gray background"
        assert caption(scene(["red", "blue"], ["circle", "square"], "black"), 0) == "a red circle and a blue square on a black background"
        assert (
            caption(scene(["red", "blue", "orange"], ["circle", "square", "star"], "white"), 0)
            == "a red circle, a blue square and an orange star on a white background"
        )
        empty = sample_layouts(2, torch.Generator().manual_seed(0), min_objects=0, max_objects=0)
        assert captions(empty)[0] == f"a {list(BACKGROUNDS)[int(empty.background[0])]} background"

    def test_a_partial_caption_names_the_chosen_objects_and_maybe_the_background(self):
        layout = scene(["red", "blue", "orange"], ["circle", "square", "star"], "white")
        assert partial_caption(layout, 0, [False, True, False], with_background=False) == "a blue square"
        assert partial_caption(layout, 0, [True, False, True], with_background=True) == ("a red circle and an orange star on a white background")
        assert partial_caption(layout, 0, [False, False, False], with_background=False) == "on a white background"

    def test_training_captions_are_full_partial_or_a_seeded_mix(self):
        layout = sample_layouts(64, torch.Generator().manual_seed(3))
        full = captions(layout)
        assert training_captions(layout, torch.Generator().manual_seed(0), 0.0) == full
        mixed = training_captions(layout, torch.Generator().manual_seed(0), 0.5)
        assert mixed == training_captions(layout, torch.Generator().manual_seed(0), 0.5)
        assert 0 < sum(m != f for m, f in zip(mixed, full)) < len(full)
        partial = training_captions(layout, torch.Generator().manual_seed(0), 1.0)
        for text, whole in zip(partial, full):  # every phrase of a partial caption is in the full one
            objects, _, background = text.partition(" on ")
            assert all(phrase in whole for phrase in objects.replace(" and ", ", ").split(", ") if phrase)
            assert not background or whole.endswith("on " + background)

    def test_number_of_distinct_captions(self):
        assert num_captions() == 4 * (6 * 4 + 6 * 5 * 4**2 + 6 * 5 * 4 * 4**3)
        drawn = set(captions(sample_layouts(4000, torch.Generator().manual_seed(0), max_objects=1)))
        assert len(drawn) == num_captions(1, 1)


class TestCaptionTokenizer:
    @pytest.fixture(scope="class")
    def tokenizer(self):
        return clip_tokenizer()

    def test_equals_the_hf_tokenizer_on_random_captions(self, tokenizer):
        texts = captions(sample_layouts(400, torch.Generator().manual_seed(0), min_objects=0))
        rng = random.Random(0)
        texts += [object_phrase(rng.randrange(6), rng.randrange(4)) for _ in range(20)]
        texts += [background_phrase(b) for b in range(4)]
        texts += ["  A Red   circle,a blue square  "]  # odd spacing and case
        texts += [", ".join(texts[:30])]  # longer than 77 tokens: truncated
        fast = CaptionTokenizer(tokenizer)(texts)
        expected = tokenizer(texts, padding="max_length", max_length=77, truncation=True).input_ids
        assert fast.dtype == torch.long and fast.shape == (len(texts), 77)
        assert fast.tolist() == expected

    def test_encodes_layouts_and_caches_words(self, tokenizer):
        fast = CaptionTokenizer(tokenizer)
        layout = sample_layouts(64, torch.Generator().manual_seed(1))
        ids = fast.encode_layouts(layout)
        assert ids.shape == (64, 77) and (ids[:, 0] == tokenizer.bos_token_id).all()
        vocabulary = {"a", "an", "and", "on", "background", *COLOURS, *SHAPES, *BACKGROUNDS}
        assert set(fast._words) <= vocabulary | {w + "," for w in SHAPES}


@pytest.fixture(scope="module")
def split() -> ToyShapesSplit:
    return ToyShapesSplit(n=60, seed=0)


@pytest.fixture(scope="module")
def items(split):
    return [split.load(i) for i in split.item_ids()]


def same_item(a, b) -> bool:
    return (
        a.id == b.id
        and np.array_equal(np.asarray(a.image), np.asarray(b.image))
        and (a.prompt, a.source, a.target, a.meta) == (b.prompt, b.source, b.target, b.meta)
        and torch.equal(a.gt_mask, b.gt_mask)
    )


class TestToyShapesSplit:
    def test_protocol(self, split, items):
        assert split.name == "toy_shapes" and split.has_masks
        assert split.item_ids()[:2] == ["toy-00000", "toy-00001"] and len(split.item_ids()) == 60
        split.prepare(None)
        item = items[0]
        assert item.image.mode == "RGB" and item.image.size == (64, 64)
        assert item.gt_mask.shape == (64, 64) and set(item.gt_mask.unique().tolist()) <= {0.0, 1.0}
        with pytest.raises(KeyError):
            split.load("toy-00060")
        with pytest.raises(KeyError):
            split.load("synthetic-00000")

    def test_identical_across_constructions(self, items):
        again = ToyShapesSplit(n=60, seed=0)
        assert all(same_item(a, again.load(a.id)) for a in items)
        other = ToyShapesSplit(n=60, seed=1)
        assert not any(same_item(a, other.load(a.id)) for a in items[:5])

    def test_items_do_not_depend_on_n(self, items):
        small = ToyShapesSplit(n=20, seed=0)
        assert all(same_item(a, small.load(a.id)) for a in items[:20])

    def test_object_edits(self, split, items):
        edits = [(i, item) for i, item in enumerate(items) if item.meta["edit_kind"] == "object"]
        assert len(edits) > 30
        assert {item.meta["change"] for _, item in edits} == {"colour", "shape", "both"}
        for i, item in edits:
            meta = item.meta
            slot = int(meta["edited_slot"])
            layout = split.edit(i).layout
            _, masks = render(layout, 64)
            assert torch.equal(item.gt_mask, masks[0, slot].float())
            assert item.source == object_phrase(meta["source_colour"], meta["source_shape"])
            assert item.source in item.prompt
            assert item.target == object_phrase(meta["target_colour"], meta["target_shape"])
            assert item.target != item.source
            colour_changed = meta["target_colour"] != meta["source_colour"]
            shape_changed = meta["target_shape"] != meta["source_shape"]
            assert (colour_changed, shape_changed) == {"colour": (True, False), "shape": (False, True), "both": (True, True)}[meta["change"]]
            # A new colour is one no object of the scene has.
            if colour_changed:
                assert meta["target_colour"] not in item.prompt
            # The masked pixels have the source colour.
            pixels = torch.from_numpy(np.array(item.image)).float() / 255
            mean = pixels[item.gt_mask.bool()].mean(0)
            assert (mean - torch.tensor(COLOURS[meta["source_colour"]])).abs().max() < 0.06
            assert meta["target_prompt"] == item.prompt.replace(item.source, item.target)

    def test_background_edits_mask_the_complement_of_the_objects(self, split, items):
        edits = [(i, item) for i, item in enumerate(items) if item.meta["edit_kind"] == "background"]
        assert 4 <= len(edits) <= 24  # 20 % of 60
        for i, item in edits:
            _, masks = render(split.edit(i).layout, 64)
            assert torch.equal(item.gt_mask, 1 - masks[0].any(0).float())
            assert item.source == background_phrase(item.meta["source_colour"])
            assert item.target == background_phrase(item.meta["target_colour"])
            assert item.target != item.source and item.prompt.endswith(item.source)
            assert item.meta["target_prompt"] == item.prompt.replace(item.source, item.target)

    def test_background_share(self):
        assert all(ToyShapesSplit(n=10, background_share=1.0).load(i).meta["edit_kind"] == "background" for i in ToyShapesSplit(n=10).item_ids())
        assert all(ToyShapesSplit(n=10, background_share=0.0).load(i).meta["edit_kind"] == "object" for i in ToyShapesSplit(n=10).item_ids())

    def test_expected_image_differs_only_where_the_edit_is(self, split, items):
        for item in items[:20]:
            before = torch.from_numpy(np.array(item.image)).float()
            after = torch.from_numpy(np.array(split.expected_image(item.id))).float()
            changed = (before - after).abs().amax(-1) > 0
            assert changed.sum() > 20
            if item.meta["change"] in ("colour", "background"):
                # The mask and the anti-aliased pixels just outside it.
                near = torch.nn.functional.max_pool2d(item.gt_mask[None, None], 3, 1, 1)[0, 0] > 0
                assert not (changed & ~near).any()

    def test_reference_masks(self, split):
        refs = split.reference_masks()
        assert set(refs) == {"disc", "full"}
        assert torch.equal(refs["full"], torch.ones(64, 64))
        disc = refs["disc"]
        assert abs(float(disc.sum()) - split.mean_object_area()) < 30
        assert torch.equal(disc, disc.flip(0)) and torch.equal(disc, disc.flip(1))

    def test_the_config_builds_the_split(self):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=["logger=none", "dataset=toy_shapes"])
        dataset = instantiate(cfg.dataset)
        assert isinstance(dataset, ToyShapesSplit)
        assert (dataset.n, dataset.seed, dataset.size, dataset.background_share) == (100, 0, 64, 0.2)
