"""Checking a composed run config before any model loads: every bad value is one sentence.

What is allowed comes from the code the config sets up, never from a copy kept here:

- every ``_target_`` must be the project's own (:mod:`benchmarks.run.targets`): until they all are,
  nothing else is looked at, imported or built;
- each node's ``_target_`` signature gives its settings, their types (checked strictly with
  pydantic: a value of another type is refused, not converted) and the ranges of the numeric ones
  (declared in the annotations, :mod:`instdiffedit.ranges`);
- the method must run on the model's family (``model.family``, the classes' ``capabilities.families``),
  and so must each of its parts (``_target_`` nodes among its settings: a composed method's mask
  source and editor), whose settings are checked as a method's;
- the method's constructor gives its ranges: it is built on stand-ins for the pipelines (of the
  family's pipeline class, so that it picks the family's backbone), and
  editors check their settings before they touch a model; the first use of a model ends the
  trial. A refused value is found by setting the non-default settings back to their defaults
  one at a time, so each line names the setting that is wrong;
- the split is built (it lists and checks its files, downloads its list once, loads nothing);
- the model's local folders, and its hub ids when the hub is off (``HF_HUB_OFFLINE``), are looked
  up, for every family (:data:`PRETRAINED_LOADERS`); ``device`` must exist on this machine; the harness's own keys are typed here.

:func:`check_run_config` returns the errors and warnings; ``benchmarks.run.callbacks.ValidateConfig``
prints them and stops the run before Hydra creates its folder.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import operator
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import torch
from hydra.utils import get_object, instantiate
from omegaconf import Container, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import ConfigDict, TypeAdapter, ValidationError

from benchmarks.data.downloads import DownloadError
from benchmarks.data.files import MissingFilesError
from benchmarks.devices import resolve_dtype
from benchmarks.models.families import load_family
from benchmarks.models.loading import (
    ModelUnavailableError,
    check_model_source,
    load_pretrained,
)
from benchmarks.run.folder import Shard
from benchmarks.run.runner import check_batch_size
from benchmarks.run.targets import target_errors
from instdiffedit.backbones import BACKBONES, PIPELINE_FAMILIES, check_family
from instdiffedit.ranges import range_error
from instdiffedit.types import Capabilities

HARNESS_KEYS: dict[str, type] = {
    "seed": int,
    "device": str,
    "shard.index": int,
    "shard.count": int,
    "batch_size": int,
    "save_images": bool,
    "paths.output_root": str,
    "paths.cache_dir": str,
    "plugins": list[str],
}
"""The harness's own top-level settings and their types (everything else belongs to a ``_target_``)."""

PRETRAINED_LOADERS = (load_pretrained, load_family)
"""The loaders of downloaded models (every family's): their ``base`` and ``inpaint`` are hub ids or folders,
looked up before the run starts."""

_HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
_STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)


@dataclass
class ConfigCheck:
    """What :func:`check_run_config` found: ``error:`` lines stop the run, ``warning:`` lines do not."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _ModelNeeded(BaseException):
    """Raised by :class:`_NoModel` on first use; a BaseException, so no ``except Exception`` hides it."""


class _NoModel:
    """Stands in for a pipeline while an editor is built only to check its settings."""

    def __getattr__(self, name: str) -> Any:
        raise _ModelNeeded


def _no_model(family: str) -> _NoModel:
    """A stand-in of the family's base pipeline class: the editor picks the family's backbone from
    the class, and the backbone's first look at the model ends the trial."""
    families = {**{cls: backbone.family for cls, backbone in BACKBONES.items()}, **PIPELINE_FAMILIES}
    pipeline = next(cls for cls, pipeline_family in families.items() if pipeline_family == family)
    return object.__new__(type(f"No{pipeline.__name__}", (_NoModel, pipeline), {}))


def _shown(value: Any) -> str:
    """A value as it is written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _target(node: DictConfig) -> Callable[..., Any]:
    return get_object(node._target_)


def _signature(factory: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """The parameters, their resolved type hints (with their declared ranges), and whether it takes ``**kwargs``."""
    function = factory.__init__ if inspect.isclass(factory) else factory
    parameters = dict(inspect.signature(function).parameters)
    parameters.pop("self", None)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except (NameError, TypeError):  # a hint that does not resolve: leave types to the constructor
        hints = {}
    variadic = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return parameters, hints, variadic


def _type_name(hint: Any) -> str:
    """A type hint as a user reads it, its ranges left out (they have their own sentence): ``int | None``."""

    def plain(hint: Any) -> Any:
        if typing.get_origin(hint) is Annotated:
            return plain(typing.get_args(hint)[0])
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            return functools.reduce(operator.or_, map(plain, typing.get_args(hint)))
        return hint

    return str(plain(hint)).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _type_errors(prefix: str, settings: Mapping[str, Any], factory: Callable[..., Any]) -> dict[str, str]:
    """Per setting that does not fit ``factory``'s signature: the error line."""
    parameters, hints, variadic = _signature(factory)
    errors = {}
    for key, value in settings.items():
        if key not in parameters:
            if not variadic:
                close = difflib.get_close_matches(key, parameters, n=1)
                hint = f"did you mean {prefix}.{close[0]}? " if close else ""
                errors[key] = (
                    f"{prefix}.{key}={_shown(value)}: {factory.__qualname__} has no setting {key!r}; "
                    f"{hint}its settings: {', '.join(p for p in parameters if p not in ('pipe', 'inpaint_pipe'))}."
                )
            continue
        if key not in hints:
            continue
        if (outside := range_error(key, value, hints[key])) is not None:
            errors[key] = f"{prefix}.{key}={_shown(value)}: {outside}"
            continue
        try:
            TypeAdapter(hints[key], config=_STRICT).validate_python(value)
        except ValidationError as error:
            reason = error.errors()[0]["msg"].removeprefix("Input ")
            errors[key] = f"{prefix}.{key}={_shown(value)}: {reason} ({factory.__qualname__}'s {key} is {_type_name(hints[key])})."
    return errors


def _construction_error(build: Callable[[dict[str, Any]], Any], settings: dict[str, Any]) -> str | None:
    """The constructor's complaint about ``settings``, or None once it accepts them (or needs a model)."""
    try:
        build(settings)
    except _ModelNeeded:
        return None
    except (ValueError, TypeError, KeyError) as error:
        return str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    return None


def _range_errors(prefix: str, settings: dict[str, Any], build: Callable[[dict[str, Any]], Any], defaults: Mapping[str, Any]) -> list[str]:
    """The constructor's own checks, one line per refused setting (or group of settings that clash)."""
    errors = []
    settings = dict(settings)
    for _ in range(len(settings) + 1):
        message = _construction_error(build, settings)
        if message is None:
            break
        changed = [k for k in settings if k in defaults and settings[k] != defaults[k]]
        culprits = [k for k in changed if _construction_error(build, {**settings, k: defaults[k]}) != message]
        if not culprits:
            errors.append(f"{prefix}: {message}")
            break
        errors.append(", ".join(f"{prefix}.{k}={_shown(settings[k])}" for k in culprits) + f": {message}")
        settings.update({k: defaults[k] for k in culprits})
    return errors


def _settings(node: DictConfig) -> dict[str, Any]:
    resolved = OmegaConf.to_container(node, resolve=True)
    return {k: v for k, v in resolved.items() if k not in _HYDRA_KEYS}


def _node_errors(prefix: str, node: DictConfig) -> list[str]:
    """Signature and type errors of one ``_target_`` node."""
    return list(_type_errors(prefix, _settings(node), _target(node)).values())


def _parts(node: DictConfig) -> dict[str, DictConfig]:
    """The ``_target_`` nodes among a method's settings: the parts it is built of (a composed method's
    mask source and editor, an editor's inner editor), each built as a method is."""
    return {k: v for k, v in node.items() if isinstance(v, DictConfig) and "_target_" in v}


def _capabilities(node: DictConfig) -> Capabilities:
    """The method's capabilities: its class's, joined with those of its parts (see :meth:`Capabilities.joined`)."""
    return _target(node).capabilities.joined(*map(_capabilities, _parts(node).values()))


def _method_errors(node: DictConfig, family: str, prefix: str = "method") -> list[str]:
    """The method's settings: types from its signature, ranges from its constructor built without models
    (on a stand-in of the model family's pipeline); then each part's, as a method's, under its own prefix."""
    factory = _target(node)
    parts = _parts(node)
    settings = {k: v for k, v in _settings(node).items() if k not in parts}
    bad_types = _type_errors(prefix, settings, factory)
    parameters, _, _ = _signature(factory)
    defaults = {k: p.default for k, p in parameters.items() if p.default is not inspect.Parameter.empty}
    # A setting of the wrong type is tried at its default, so that the constructor checks the others.
    well_typed = {k: defaults[k] if k in bad_types else v for k, v in settings.items() if k not in bad_types or k in defaults}
    built_parts = {k: instantiate(part) for k, part in parts.items()}  # partials: nothing is built yet

    def build(values: dict[str, Any]) -> Any:
        return factory(_no_model(family), _NoModel(), **values, **built_parts)

    errors = [*bad_types.values(), *_range_errors(prefix, well_typed, build, defaults)]
    for key, part in parts.items():  # a composed method's parts are set on the command line as mask.<key>, editor.<key>
        errors += _method_errors(part, family, key if prefix == "method" else f"{prefix}.{key}")
    return errors


def _family_errors(node: DictConfig, family: str, label: str, choices: Mapping[str, Any], path: str = "", fix: str = "") -> list[str]:
    """One line per part (or the method itself) that does not run on the model's family; a part chosen
    on the command line (``mask=``, ``editor=``) adds the fix: another choice of its group."""
    try:
        check_family(_target(node), family)
    except ValueError as error:
        reason = f"{str(error).removesuffix('.')}; {fix}." if fix else str(error)
        return [f"{label} with model={choices['model']}: {reason}"]
    errors = []
    for key, part in _parts(node).items():
        part_path = f"{path}.{key}" if path else key
        chosen = not path and choices.get(key)
        part_label = f"{key}={choices[key]}" if chosen else part_path
        part_fix = f"choose another {key}= (docs/compose.md says which run on each family)" if chosen else ""
        errors += _family_errors(part, family, part_label, choices, part_path, part_fix)
    return errors


def _part_choice_errors(cfg: DictConfig) -> list[str]:
    """``mask=`` and ``editor=`` choose the parts of a composed method; any other method takes none."""
    choices = cfg.hydra.runtime.choices
    return [
        f"{group}={choices[group]}: method={choices.method} takes no {group}; {group}= chooses a part of method=compose (docs/compose.md)."
        for group in ("mask", "editor")
        if choices.get(group) and group not in _parts(cfg.method)
    ]


def _model_errors(node: DictConfig) -> list[str]:
    errors = _node_errors("model", node)
    settings = _settings(node)
    if isinstance(settings.get("dtype"), str):  # another type is the signature check's
        try:
            resolve_dtype(settings["dtype"], "cpu")
        except ValueError as error:
            errors.append(f"model.dtype={_shown(settings['dtype'])}: {error}")
    if _target(node) in PRETRAINED_LOADERS and not errors:
        for key in ("base", "inpaint"):
            if settings.get(key) is not None:
                try:
                    check_model_source(settings[key], settings.get(f"{key}_key", f"model.{key}"))
                except ModelUnavailableError as error:
                    errors.append(str(error))
    return errors


def _metric_nodes(node: DictConfig, prefix: str = "metrics") -> dict[str, DictConfig]:
    """Every metric node below ``metrics`` (the corpus metrics sit one level deeper)."""
    found = {}
    for key, value in node.items():
        if isinstance(value, DictConfig):
            if "_target_" in value:
                found[f"{prefix}.{key}"] = value
            else:
                found.update(_metric_nodes(value, f"{prefix}.{key}"))
    return found


def _unknown_keys(cfg: DictConfig, groups: set[str], prefix: str = "") -> list[str]:
    """A line per setting outside the config groups that the harness does not have (a typo makes a new run folder)."""
    errors = []
    for key in cfg:
        path = f"{prefix}{key}"
        if path in groups or path == "hydra" or path in HARNESS_KEYS:
            continue
        if any(known.startswith(f"{path}.") for known in HARNESS_KEYS) and isinstance(cfg._get_node(key), DictConfig):
            errors += _unknown_keys(cfg[key], groups, f"{path}.")
            continue
        close = difflib.get_close_matches(path, [*HARNESS_KEYS, *groups], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        errors.append(f"{path}={_shown(cfg._get_node(key)._value())}: the harness has no setting {path!r}; {hint}its settings: {', '.join(HARNESS_KEYS)}.")
    return errors


def _resolution_errors(node: Container, prefix: str = "") -> list[str]:
    """A line per value that cannot be resolved (``${nope}``, ``${seed}`` as the seed); the ``hydra`` node and
    what it fills in (``${hydra:runtime.output_dir}``) are Hydra's, known once the run starts."""
    errors = []
    for key in node if isinstance(node, DictConfig) else range(len(node)):
        path = f"{prefix}{key}" if isinstance(node, DictConfig) else f"{prefix.removesuffix('.')}[{key}]"
        raw = node._get_node(key)._value()
        if path == "hydra" or (isinstance(raw, str) and "${hydra:" in raw):
            continue
        try:
            value = node[key]
        except OmegaConfBaseException as error:
            errors.append(f"{path}={_shown(raw)}: {str(error).splitlines()[0].rstrip('.')}.")
            continue
        if isinstance(value, Container):
            errors += _resolution_errors(value, f"{path}.")
    return errors


def _harness_errors(cfg: DictConfig) -> list[str]:
    errors = _unknown_keys(cfg, {group for group in cfg.hydra.runtime.choices if "/" not in group})
    for key, expected in HARNESS_KEYS.items():
        value = OmegaConf.select(cfg, key)
        value = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        try:
            TypeAdapter(expected, config=_STRICT).validate_python(value)
        except ValidationError as error:
            errors.append(f"{key}={_shown(value)}: {error.errors()[0]['msg'].removeprefix('Input ')}.")
    if errors:
        return errors
    for key, check in (("shard.index", lambda: Shard(cfg.shard.index, cfg.shard.count)), ("batch_size", lambda: check_batch_size(cfg.batch_size))):
        try:
            check()
        except ValueError as error:
            errors.append(f"{key}={_shown(OmegaConf.select(cfg, key))}: {error}")
    try:
        device = torch.device("cuda" if cfg.device == "auto" else cfg.device)
    except RuntimeError as error:
        errors.append(f"device={cfg.device}: {error}; use auto, cpu, cuda or cuda:<index>.")
    else:
        if device.type == "cuda" and cfg.device != "auto" and not torch.cuda.is_available():
            errors.append(f"device={cfg.device}: this machine has no CUDA device; use device=auto or device=cpu.")
    return errors


def _toy_model_warning(cfg: DictConfig) -> str | None:
    from benchmarks.toy.model import toy_dit_pipelines, toy_pipelines
    from benchmarks.toy.split import ToyShapesSplit

    if _target(cfg.model) in (toy_pipelines, toy_dit_pipelines) and _target(cfg.dataset) is not ToyShapesSplit:
        return (
            f"model={cfg.hydra.runtime.choices.model} is the toy world's model, made for dataset={ToyShapesSplit.name} (64 px scenes of coloured "
            f"shapes): its edits of {cfg.hydra.runtime.choices.dataset} items mean little (the paper's models: model=sd14)."
        )
    return None


def check_run_config(cfg: DictConfig) -> ConfigCheck:
    """Every problem of a composed run config that can be found without loading a model."""
    if unowned := target_errors(cfg):  # first, the plugins the config names imported: what they register is known below
        return ConfigCheck(errors=unowned)
    if unresolved := _resolution_errors(cfg):
        return ConfigCheck(errors=unresolved)
    check = ConfigCheck(errors=_harness_errors(cfg))
    if (warning := _toy_model_warning(cfg)) is not None:
        check.warnings.append(warning)
    choices, family = cfg.hydra.runtime.choices, OmegaConf.select(cfg, "model.family")
    if part_errors := _part_choice_errors(cfg):
        check.errors += part_errors
        return check
    if family_errors := _family_errors(cfg.method, family, f"method={choices.method}", choices):
        check.errors += family_errors
    else:
        check.errors += _method_errors(cfg.method, family)
    capabilities = _capabilities(cfg.method)
    if capabilities.needs_inpainting_model and not family_errors and not OmegaConf.select(cfg, "model.inpaint", default=None):
        who = f"editor={choices.editor}" if choices.get("editor") else f"method={choices.method}"
        check.errors.append(
            f"{who} edits with the family's inpainting twin and model={choices.model} has none (model.inpaint is not set); "
            "use editor=blend, or a model with its twin."
        )
    check.errors += _model_errors(cfg.model)
    for prefix, node in _metric_nodes(cfg.metrics).items():
        check.errors += _node_errors(prefix, node)
    dataset_errors = _node_errors("dataset", cfg.dataset)
    check.errors += dataset_errors
    if dataset_errors:
        return check
    try:
        dataset = instantiate(cfg.dataset)
    except Exception as error:  # Hydra wraps the split's own error
        cause = error.__cause__ or error
        if not isinstance(cause, (MissingFilesError, DownloadError, ValueError, KeyError)):
            raise
        message = str(cause.args[0] if isinstance(cause, KeyError) and cause.args else cause)
        named = isinstance(cause, (MissingFilesError, DownloadError))  # these name their key already
        check.errors.append(message if named else f"dataset={cfg.hydra.runtime.choices.dataset}: {message}")
        return check
    who = f"mask={choices.mask}" if choices.get("mask") else f"method={choices.method}"
    if capabilities.needs_ground_truth_mask and not dataset.has_masks:
        check.errors.append(f"{who} needs ground-truth masks and dataset={dataset.name} has none.")
    if capabilities.split_mask is not None and capabilities.split_mask not in dataset.reference_masks():
        check.errors.append(
            f"{who} edits inside the split's reference mask {capabilities.split_mask!r} and dataset={dataset.name} has none (dataset=toy_shapes has one)."
        )
    return check
