"""Whatever values a command line gives the known settings, the config check answers with error lines
or a pass: never an exception."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

import run  # noqa: F401  (registers the resolvers)
from benchmarks.run.config_check import HARNESS_KEYS, check_run_config

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def composed():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["model=tiny", "dataset=synthetic", "logger=none"], return_hydra_config=True)


def _known_keys() -> list[str]:
    method = OmegaConf.load(CONF / "method" / "instdiffedit.yaml")
    dataset = OmegaConf.load(CONF / "dataset" / "synthetic.yaml")
    settings_of = lambda group, node: [f"{group}.{k}" for k in node if not k.startswith("_")]  # noqa: E731
    return [*HARNESS_KEYS, *settings_of("method", method), *settings_of("dataset", dataset), "model.dtype", "model.fast_path"]


# What a command line can give: numbers at and past every edge, text (interpolations among it), lists, null.
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "auto", "cpu", "t-1", "${seed}", "${nope}", "${oc.env:NOPE}", "~/x", "1e400", "null"]),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-3, max_value=70), max_size=3),
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(_known_keys()), VALUES, min_size=1, max_size=3))
def test_random_values_of_the_known_settings_give_error_lines_or_a_pass_never_an_exception(composed, changes: dict) -> None:
    cfg = copy.deepcopy(composed)
    OmegaConf.set_struct(cfg, False)
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value, merge=False)
    check = check_run_config(cfg)
    assert all(isinstance(line, str) and line and "\n" not in line for line in check.errors + check.warnings)
