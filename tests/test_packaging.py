"""The installed namespace: setup.cfg maps every source folder into bss2_calib, and data is package data."""
import configparser
from pathlib import Path

import bss2_calib
from bss2_calib import chipsim
from bss2_calib.data import models_dir

REPO = Path(__file__).resolve().parents[1]


def _setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg["options"]


def test_setup_cfg_lists_every_package_folder():
    opts = _setup_cfg()
    mapping = dict(line.split(" = ") for line in opts["package_dir"].strip().splitlines())
    listed = set(opts["packages"].split())
    found = set()
    for name, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join((name, *rel.parts)))
    assert found == listed, f"setup.cfg packages differ from the folders: {sorted(found ^ listed)}"


def test_presets_and_models_are_package_data(monkeypatch):
    monkeypatch.delenv("BSS2_PRESET_DIR", raising=False)
    assert {"default", "harsh", "ideal", "noiseless", "hxtorch-mock"} <= set(chipsim.list_presets())
    assert (models_dir() / "mnist_int.npz").is_file()
    assert Path(bss2_calib.__file__).parent.name == "bss2_calib"


def test_the_preset_override_is_read_when_used(monkeypatch, tmp_path):
    (tmp_path / "mine.json").write_text((models_dir().parent / "presets" / "default.json")
                                        .read_text().replace('"name": "default"', '"name": "mine"'))
    monkeypatch.setenv("BSS2_PRESET_DIR", str(tmp_path))
    assert chipsim.list_presets() == ["mine"]
    assert chipsim.load_preset("mine").name == "mine"
    monkeypatch.delenv("BSS2_PRESET_DIR")
    assert "mine" not in chipsim.list_presets()
