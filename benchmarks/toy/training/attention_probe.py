"""Where a toy model's text attention goes, without any result folder: the card's attention table alone.

    python -m benchmarks.toy.training.attention_probe --model models/toy              # the UNet's cross-attention
    python -m benchmarks.toy.training.attention_probe --model models/toy --denoiser dit --device cuda

For probing a training candidate before a full run: the share of a pixel's attention that the start
token, the words, the end token and the padding take, on and off the object, in single-object scenes
of the toy split (:func:`benchmarks.toy.training.card.attention_shares`). It measures the model; nothing here
trains on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.toy.model import TOY_MODEL
from benchmarks.toy.training.card import DENOISERS, attention_shares


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=TOY_MODEL, help="a folder written by python -m benchmarks.toy.training.train")
    parser.add_argument("--denoiser", choices=sorted(DENOISERS), default="unet", help="the UNet's cross-attention or the DiT's joint attention")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--items", type=int, default=30, help="the toy split's first items; its single-object ones are measured")
    args = parser.parse_args(argv)
    denoiser = DENOISERS[args.denoiser]
    table = attention_shares(denoiser.pipeline(args.model, args.device), n_items=args.items, joint=denoiser.joint)
    print(f"{args.model} ({args.denoiser}), {table.attrs['scenes']} single-object scenes:")
    print(table.to_markdown(floatfmt=".3f"), flush=True)


if __name__ == "__main__":
    main()
