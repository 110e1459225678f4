"""A Qwen2.5-VL tokenizer and processor built offline, for the tiny and full-size Qwen-Image-Edit models.

Qwen's byte-level BPE (151,643 tokens) cannot be downloaded here, so a small one is trained at
build time (a fraction of a second) with transformers' ``Qwen2Tokenizer`` pipeline (Qwen2's
pre-tokenising pattern, byte-level pieces, no start token) on the tiny models' captions and
the system prompt Qwen-Image-Edit's pipeline wraps every instruction in. Trained on that prompt,
it splits it into whole words as Qwen's tokenizer does: the 64 tokens before the image, which
the pipeline drops from the encoder's output (``prompt_template_encode_start_idx``). The special
tokens are Qwen2.5-VL's chat and vision markers; the image processor is transformers'
``Qwen2VLImageProcessor`` (14-pixel patches, 2 x 2 merged into one token).
"""

from __future__ import annotations

from tokenizers import pre_tokenizers
from transformers import (
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from benchmarks.models.t5_tokenizer import CAPTIONS

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen2.5-VL's chat and vision markers (ids 0-7 here; 151643-151656 in Qwen's vocabulary)."""

QWEN_IMAGE_EDIT_SYSTEM_PROMPT = (
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the image. Generate a new "
    "image that meets the user's requirements while maintaining consistency with the original input where "
    "appropriate.<|im_end|>\n<|im_start|>user\n"
)
"""The start of the text QwenImageEditPipeline encodes (its ``prompt_template_encode``), up to the image."""

_VOCAB_SIZE = 1000  # an upper bound: the corpus decides how many merges there are


def qwen_tokenizer() -> Qwen2Tokenizer:
    """A small Qwen2-style byte-level BPE tokenizer, trained afresh (deterministically) on every call."""
    bytes_only = Qwen2Tokenizer(vocab={c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}, merges=[])
    corpus = [*CAPTIONS, QWEN_IMAGE_EDIT_SYSTEM_PROMPT]
    return bytes_only.train_new_from_iterator(corpus, vocab_size=_VOCAB_SIZE, new_special_tokens=list(SPECIAL_TOKENS))


def qwen_processor(tokenizer: Qwen2Tokenizer, **image_options: object) -> Qwen2VLProcessor:
    """Qwen2.5-VL's processor over ``tokenizer``: its image processor with transformers' defaults,
    or ``image_options`` (a hub repository's ``preprocessor_config.json`` values)."""
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**image_options),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),  # required by the processor; Qwen-Image-Edit reads no video
    )


def vision_token_ids(tokenizer: Qwen2Tokenizer) -> dict[str, int]:
    """The Qwen2.5-VL config's ids of the vision markers, in ``tokenizer``'s vocabulary."""
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }
