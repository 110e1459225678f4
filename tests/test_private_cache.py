"""The suite never writes into the user's home: its caches are private from the first import on."""

from __future__ import annotations

import os
from pathlib import Path

# What a test module sees when it is imported, e.g. an environment copied for run.py subprocesses.
ENVIRONMENT_AT_IMPORT = dict(os.environ)


def test_an_environment_copied_at_import_already_points_every_cache_outside_the_home() -> None:
    home = Path.home().resolve()
    for variable in ("INSTDIFFEDIT_CACHE", "XDG_CACHE_HOME"):
        assert variable in ENVIRONMENT_AT_IMPORT, f"{variable} is set only after the test modules were imported"
        assert home not in Path(ENVIRONMENT_AT_IMPORT[variable]).resolve().parents, ENVIRONMENT_AT_IMPORT[variable]


def test_the_default_cache_folder_of_a_run_is_the_private_one() -> None:
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config")
    assert cfg.paths.cache_dir == ENVIRONMENT_AT_IMPORT["INSTDIFFEDIT_CACHE"]
