"""Chip presets: data files that describe a population of chips.

A preset is a JSON file (``data/presets/NAME.json``). It may name a ``base``
preset and override any subset of its keys; the resolved parameter set is
validated against the schema of the built-in ``default`` preset (unknown keys
and values of the wrong type or range are refused). The SHA-256 of the
resolved parameters (canonical JSON) identifies a preset's content: a
calibration artifact records it, so a calibration is never applied to a chip
of a different population by mistake.
"""
import copy
import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from .errors import PresetError

MAX_PRESET_BYTES = 1 << 20


def preset_dir():
    """Folder of the built-in presets: package data, or ``$BSS2_PRESET_DIR`` (read at each call).

    Returns a :class:`pathlib.Path` or an :mod:`importlib.resources` Traversable.
    """
    env = os.environ.get("BSS2_PRESET_DIR")
    if env:
        return Path(env)
    return files("bss2_calib.data") / "presets"


def list_presets():
    """Names of the built-in presets, sorted."""
    return sorted(p.name[:-5] for p in preset_dir().iterdir() if p.name.endswith(".json") and p.is_file())


@dataclass(frozen=True)
class Preset:
    """A resolved, validated preset.

    Attributes
    ----------
    name : str
        The preset's name.
    params : dict
        The resolved parameters (every key of the schema present).
    source : str
        Where it was read from (a built-in name or a file path).
    """

    name: str
    params: dict = field(repr=False)
    source: str = ""

    @property
    def sha256(self):
        """Hex SHA-256 of the canonical JSON of the resolved parameters."""
        return preset_hash(self.params)

    def __getitem__(self, key):
        return self.params[key]


def preset_hash(params):
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _read_json(path):
    """Read a preset file: a user's path (size checked before reading) or a package resource."""
    if isinstance(path, (str, os.PathLike)):
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as err:
            raise PresetError(f"cannot read preset file {path}: {err.strerror}") from None
        if size > MAX_PRESET_BYTES:
            raise PresetError(f"preset file {path} is {size} bytes, more than the limit of {MAX_PRESET_BYTES}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as err:
        raise PresetError(f"cannot read preset file {path}: {err.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PresetError(f"preset file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise PresetError(f"preset file {path} must hold a JSON object")
    return data


def _merge(base, override, where):
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key in ("base",):
            continue
        if key not in base:
            raise PresetError(f"preset {where}: unknown key {key!r}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise PresetError(f"preset {where}: {key!r} must be an object")
            for sub in value:
                if sub not in base[key]:
                    raise PresetError(f"preset {where}: unknown key {key}.{sub!r}")
            out[key] = {**base[key], **value}
        else:
            out[key] = value
    return out


_RULES = {
    "model": lambda v: v in ("physical", "linear"),
    "rounding": lambda v: v in ("round", "floor"),
    "noise.method": lambda v: v in ("fast", "gaussian"),
}


def _validate(params, where):
    def check(key, value, ref):
        if key in _RULES:
            if not _RULES[key](value):
                raise PresetError(f"preset {where}: bad value {value!r} for {key}")
            return
        if isinstance(ref, bool):
            if not isinstance(value, bool):
                raise PresetError(f"preset {where}: {key} must be true or false, got {value!r}")
        elif isinstance(ref, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PresetError(f"preset {where}: {key} must be a finite number, got {value!r}")
            if value < 0 and "tempco" not in key:
                raise PresetError(f"preset {where}: {key} must be >= 0, got {value!r}")
            if key.startswith("faults.") and value > 0.5:
                raise PresetError(f"preset {where}: fault fraction {key} = {value} is above 0.5")
        elif isinstance(ref, str):
            if not isinstance(value, str):
                raise PresetError(f"preset {where}: {key} must be a string, got {value!r}")

    for key, ref in _schema().items():
        if isinstance(ref, dict):
            for sub, subref in ref.items():
                check(f"{key}.{sub}", params[key][sub], subref)
        else:
            check(key, params[key], ref)
    if params["noise"]["result_std_lsb"] > 50:
        raise PresetError(f"preset {where}: noise.result_std_lsb above 50 LSB is not a chip")
    if params["gain_nominal"] <= 0:
        raise PresetError(f"preset {where}: gain_nominal must be > 0")
    if params["mismatch_scale"] > 10:
        raise PresetError(f"preset {where}: mismatch_scale above 10 is not a chip")
    # Clipping raw reads without a baseline model is meaningless in the linear model.
    if params["model"] == "linear" and (params["nonideal"]["adc_raw_clip"] or params["nonideal"]["soft_saturation"]):
        raise PresetError(f"preset {where}: the linear model has no membrane, so adc_raw_clip and soft_saturation must be false")


def _resolve(data, where, depth=0):
    if depth > 8:
        raise PresetError(f"preset {where}: 'base' chain is too deep (a cycle?)")
    base_name = data.get("base")
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise PresetError(f"preset {where}: 'base' must be a preset name")
    base = _resolve(_read_builtin(base_name), base_name, depth + 1)
    return _merge(base, data, where)


def _read_builtin(name):
    path = preset_dir() / f"{name}.json"
    if not path.is_file():
        raise PresetError(f"unknown preset {name!r}; built-in presets: {', '.join(list_presets())}")
    return _read_json(path)


def load_preset(preset="default"):
    """Load and validate a preset.

    Parameters
    ----------
    preset : str, path-like or Preset, default="default"
        A built-in preset name (see :func:`list_presets`), the path of a JSON
        preset file, or an already loaded :class:`Preset` (returned as is).

    Returns
    -------
    Preset

    Raises
    ------
    PresetError
        For an unknown name, an unreadable or malformed file, unknown keys or
        bad values.
    """
    if isinstance(preset, Preset):
        return preset
    if not isinstance(preset, (str, os.PathLike)):
        raise PresetError(f"preset must be a name or a path, got {type(preset).__name__}")
    text = os.fspath(preset)
    looks_like_path = text.endswith(".json") or os.sep in text or "/" in text
    if looks_like_path:
        data = _read_json(text)
        where = text
    else:
        data = _read_builtin(text)
        where = text
    resolved = _resolve(data, where)
    if "base" not in data:
        # A file without a base must be complete; _merge refuses unknown keys.
        _merge(_schema(), resolved, where)
        for key, ref in _schema().items():
            if key not in resolved:
                raise PresetError(f"preset {where}: missing key {key!r} (or name a 'base' preset)")
            if isinstance(ref, dict):
                missing = set(ref) - set(resolved[key])
                if missing:
                    raise PresetError(f"preset {where}: missing key {key}.{sorted(missing)[0]}")
    resolved = {k: resolved[k] for k in _schema()}  # drop 'base', keep order
    _validate(resolved, where)
    name = resolved["name"] if isinstance(resolved.get("name"), str) else Path(text).stem
    return Preset(name=name, params=resolved, source=where)


@functools.cache
def _schema():
    """The schema: the package's own ``default`` preset (never an override folder's)."""
    return _read_json(files("bss2_calib.data") / "presets" / "default.json")
