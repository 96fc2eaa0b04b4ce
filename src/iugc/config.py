"""Parameters: presets, params.yaml, schema validation and per-stage views.

params.yaml is the one parameter file of the study (Snakemake's configfile and DVC's params
file). It is a preset from ``iugc/presets`` resolved over ``paper.yaml``; every number of the
paper lives in those files and nowhere in code.
"""
from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import UserError

PRESETS = ("paper", "quick", "smoke")
BASE_PRESET = "paper"


class ParamsError(UserError):
    """A parameter file or value a user wrote is wrong (reported as one line, no traceback)."""


def _read_yaml(text: str, origin: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ParamsError(f"{origin}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{origin}: expected a mapping at the top level")
    return data


def deep_merge(base: Mapping, overlay: Mapping) -> dict:
    """Return ``base`` updated recursively by ``overlay`` (mappings merge, other values replace)."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise ParamsError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return resources.files("iugc.presets").joinpath(f"{name}.yaml").read_text()


def load_preset(name: str) -> dict:
    """The full parameter set of a preset: paper.yaml overlaid by ``<name>.yaml``."""
    base = _read_yaml(preset_text(BASE_PRESET), f"preset {BASE_PRESET}")
    if name == BASE_PRESET:
        return base
    return deep_merge(base, _read_yaml(preset_text(name), f"preset {name}"))


ABSENT = object()  # a key a preset does not have


def _leaves(params: Mapping, prefix: str = "") -> dict[str, Any]:
    """Every value of ``params`` that is not a mapping, by dotted key."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_leaves(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def preset_differences(names: Iterable[str] = ("quick", "smoke")) -> list[tuple[str, list[Any]]]:
    """Every dotted key whose value differs from paper.yaml in one of the presets ``names``:
    ``(key, [paper value, value in each preset])`` (``ABSENT`` where a preset has no such key)."""
    base = _leaves(load_preset(BASE_PRESET))
    others = [_leaves(load_preset(name)) for name in names]
    keys = list(base) + [key for other in others for key in other if key not in base]
    rows = []
    for key in dict.fromkeys(keys):
        values = [base.get(key, ABSENT), *(other.get(key, ABSENT) for other in others)]
        if key != "preset" and any(value != values[0] for value in values[1:]):
            rows.append((key, values))
    return rows


def _flow(value: Any) -> str:
    """A value as it reads in a preset file (YAML flow style, one line)."""
    return "-" if value is ABSENT else yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...")


def preset_differences_markdown(names: Iterable[str] = ("quick", "smoke")) -> str:
    """:func:`preset_differences` as a Markdown table (what `iugc params --diff` prints)."""
    names = list(names)
    lines = [f"| key | {' | '.join([BASE_PRESET, *names])} |", "|---" * (len(names) + 2) + "|"]
    for key, values in preset_differences(names):
        lines.append(f"| `{key}` | " + " | ".join(_flow(value) for value in values) + " |")
    return "\n".join(lines) + "\n"


def schema() -> dict:
    return yaml.safe_load(resources.files("iugc.presets").joinpath("params.schema.yaml").read_text())


def validate_params(params: Mapping, origin: str = "params") -> None:
    """Raise ParamsError naming the first offending key if ``params`` breaks the schema."""
    import jsonschema

    spec = schema()
    validator = jsonschema.validators.validator_for(spec)(spec)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        mend = ""
        if isinstance(params, dict) and fill_from_preset(copy.deepcopy(params)):
            mend = (f" (a key this version of iugc added after {origin} was written: "
                    f"`iugc params --from {origin} --out {origin}` adds such keys from its preset)")
        raise ParamsError(f"{origin}: {where}: {_describe(err)}{mend}")
    _check_consistency(params, origin)


def _describe(err) -> str:
    """jsonschema's message, with a suggestion for a misspelt key."""
    import difflib

    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        allowed = list(err.schema.get("properties", {}))
        unknown = [key for key in err.instance if key not in allowed]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(allowed)})"
            return f"unknown key {unknown[0]!r}{hint}"
    return err.message


def known_encoders() -> dict[str, list[str]]:
    """The timm names the hrnet and resnet encoders accept (presets/encoders.yaml)."""
    return yaml.safe_load(resources.files("iugc.presets").joinpath("encoders.yaml").read_text())


def _check_consistency(params: Mapping, origin: str) -> None:
    """Cross-field rules a JSON schema cannot say."""
    source, root = params["data"]["source"], params["data"].get("root")
    if source != "phantom":
        if not root:
            raise ParamsError(f"{origin}: data.root: required when data.source is {source!r}")
        if not Path(root).expanduser().is_dir():
            raise ParamsError(f"{origin}: data.root: {root} is not a folder on this machine "
                              f"(data.source is {source!r})")
    for kind, names in known_encoders().items():
        if params["encoders"][kind] not in names:
            raise ParamsError(f"{origin}: encoders.{kind}: {params['encoders'][kind]!r} is not a timm "
                              f"model the {kind} encoder can use (e.g. {', '.join(names[:4])}; "
                              "all in iugc/presets/encoders.yaml)")
    for name, variant in params["variants"].items():
        if variant["pretrain"] == "mae" and variant["encoder"] != "attention_unet":
            raise ParamsError(f"{origin}: variants.{name}: masked-AE pretraining is defined for attention_unet only")
        if variant["pretrain"] == "moco" and variant["encoder"] == "attention_unet":
            raise ParamsError(f"{origin}: variants.{name}: MoCo pretraining is defined for hrnet and resnet encoders")
        if variant["encoder"] == "unet" and (variant["pretrain"] != "none" or variant["attention"]):
            raise ParamsError(f"{origin}: variants.{name}: the reference U-Net is trained from scratch and has no "
                              "attention (pretrain: none, attention: false)")
        if variant["encoder"] == "attention_unet" and not variant["attention"]:
            raise ParamsError(f"{origin}: variants.{name}: the Attention U-Net's attention gates are part of it; "
                              "attention must be true")
        if variant["adversarial"] and variant["output"] != "heatmaps":
            raise ParamsError(f"{origin}: variants.{name}: the discriminator judges heatmaps; output must be heatmaps")
    first, second = params["finetune"]["unfreeze_epochs"]
    if not 0 <= first <= second:
        raise ParamsError(f"{origin}: finetune.unfreeze_epochs: must be two increasing epochs")


def read_params(path: str | Path) -> dict:
    """A params file as it is, not yet validated."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ParamsError(f"{path}: cannot read ({err.strerror})") from None
    return _read_yaml(text, str(path))


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate a params file."""
    params = read_params(path)
    validate_params(params, str(path))
    return params


def fill_from_preset(params: dict) -> list[str]:
    """Add to ``params``, in place, every key the schema requires that it lacks, with the value of
    the preset it names: keys added to iugc after the file was written. Returns their dotted
    names. Only required keys are added, so a variant a user removed stays removed; a file of
    preset 'custom' has no preset to take them from and is left as it is."""
    added: list[str] = []
    if params.get("preset") in PRESETS:
        _fill_required(schema(), params, load_preset(params["preset"]), "", added)
    return added


def _fill_required(spec: Mapping, params: dict, preset: Mapping, prefix: str, added: list[str]) -> None:
    for key in spec.get("required", []):
        if key not in params and key in preset:
            params[key] = copy.deepcopy(preset[key])
            added.append(prefix + key)
    named = spec.get("properties", {})
    sections = list(named.items())
    if isinstance(spec.get("additionalProperties"), Mapping):  # sections of named entries (variants)
        sections += [(key, spec["additionalProperties"]) for key in params if key not in named]
    for key, sub in sections:
        if isinstance(params.get(key), dict) and isinstance(preset.get(key), Mapping):
            _fill_required(sub, params[key], preset[key], f"{prefix}{key}.", added)


def set_values(params: dict, assignments: Iterable[str]) -> dict:
    """Apply ``KEY=VALUE`` overrides (dotted keys, YAML values) to ``params`` in place."""
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ParamsError(f"--set {item!r}: expected KEY=VALUE")
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ParamsError(f"--set {item!r}: no section {part!r}")
            node = node[part]
        if leaf not in node:
            raise ParamsError(f"--set {item!r}: unknown key {key!r}")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ParamsError(f"--set {item!r}: the value is not valid YAML") from None
    return params


def get(params: Mapping, dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def select(params: Mapping, keys: Iterable[str]) -> dict:
    """The sub-tree of ``params`` holding exactly ``keys`` (dotted), nested as in the file."""
    out: dict = {}
    for dotted in keys:
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(get(params, dotted))
    return out


class _FlowListDumper(yaml.SafeDumper):
    """Block-style mappings, flow-style lists: params files that read like the presets."""


_FlowListDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def dump_params(params: Mapping) -> str:
    return yaml.dump(dict(params), Dumper=_FlowListDumper, sort_keys=False, width=100)


def params_hash(params: Mapping) -> str:
    """Stable short hash of a (sub-)configuration; checkpoints carry it."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
