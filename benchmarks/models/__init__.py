"""The models the methods run on, as diffusers pipelines: the real ones, loaded from hub ids or
local folders with one sentence when they cannot be had (:mod:`~benchmarks.models.loading` for
SD 1.x/2.x, :mod:`~benchmarks.models.families` for SDXL, SD 3.x and FLUX.1); small random-weight
ones in the same layouts, built offline for tests and plumbing (:mod:`~benchmarks.models.tiny`,
:mod:`~benchmarks.models.tiny_families`, whose T5 tokenizer :mod:`~benchmarks.models.t5_tokenizer`
trains); SD 1.4's architecture and the full-size SDXL, SD 3.5 Medium and FLUX.1 [dev] ones with
random weights for the speed benchmark (:mod:`~benchmarks.models.sd_architecture`,
:mod:`~benchmarks.models.family_architectures`); and :mod:`~benchmarks.models.joint_normalisers`, which
measures how two ways of normalising joint attention differ on a family's model. The toy world's
trained models load through :mod:`benchmarks.toy.model`.
"""
