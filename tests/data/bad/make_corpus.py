"""Regenerate the bad-input corpus (artifacts/ and presets/ next to this file).

    python tests/data/bad/make_corpus.py

Every case is a directory (or file) derived from one small valid artifact by a
single defect; ``cases.json`` lists the CLI invocations that use them with the
expected exit code and one-line message. ``{artifact}`` in an argument is the
case's directory, ``{good}`` a valid artifact, ``{store}`` the test's store,
``{presets}`` and ``{weights}`` the bad preset files and the bad model
(weights) files for ``bss2-calib infer`` written here.

Manifest edits come in two flavours: ``tampered_*`` cases edit a field and
leave the manifest's seal (``manifest_sha256``) stale, as a hand edit would,
and must be refused by the seal; the other manifest cases re-seal after the
edit (a crafted or buggy writer), so they reach the field checks behind it.
"""
import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _manifest(p):
    return json.loads((p / "manifest.json").read_text())


def _write_manifest(p, m, reseal=True):
    if reseal and "manifest_sha256" in m:
        from bss2_calib.calib.artifact import manifest_digest
        m["manifest_sha256"] = manifest_digest(m)
    (p / "manifest.json").write_text(json.dumps(m, indent=1))


def build():
    sys.path.insert(0, str(HERE.parents[2]))
    from bss2_calib import calib
    from bss2_calib.chipsim import Chip

    out = HERE / "artifacts"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    good = out / "good"
    calib.calibrate(Chip(0, "default", noise_seed=1), options=calib.Options(stages=("reset",))).save(good)

    def case(name, edit):
        p = out / name
        shutil.copytree(good, p)
        edit(p)

    def flip(p):
        f = p / "knobs_neuron.parquet"
        b = bytearray(f.read_bytes())
        b[len(b) // 2] ^= 0xFF
        f.write_bytes(bytes(b))

    def truncate_table(p):
        f = p / "knobs_quadrant.parquet"
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])

    def truncate_manifest(p):
        f = p / "manifest.json"
        f.write_bytes(f.read_bytes()[:200])

    def edit_manifest(fn, reseal=True):
        def _e(p):
            m = _manifest(p)
            fn(m)
            _write_manifest(p, m, reseal)
        return _e

    def tamper(fn):
        return edit_manifest(fn, reseal=False)

    def outside(m):
        m["files"]["../../outside.parquet"] = m["files"].pop("knobs_driver.parquet")

    def absolute(m):
        m["files"]["/etc/passwd.parquet"] = m["files"].pop("knobs_driver.parquet")

    def wrong_shape(p):
        import bss2_calib.calib.artifact as art
        res = calib.load(good)
        data = art.table_bytes(res.tables["knobs_driver"].iloc[:10])
        (p / "knobs_driver.parquet").write_bytes(data)
        m = _manifest(p)
        m["files"]["knobs_driver.parquet"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        _write_manifest(p, m)

    case("corrupt_byte", flip)
    case("truncated_table", truncate_table)
    case("truncated_manifest", truncate_manifest)
    case("missing_table", lambda p: (p / "knobs_driver.parquet").unlink())
    case("missing_manifest", lambda p: (p / "manifest.json").unlink())
    case("path_outside", edit_manifest(outside))
    case("path_absolute", edit_manifest(absolute))
    case("schema_version_99", edit_manifest(lambda m: m.__setitem__("schema_version", 99)))
    case("schema_version_string", edit_manifest(lambda m: m.__setitem__("schema_version", "1")))
    case("wrong_kind", edit_manifest(lambda m: m.__setitem__("kind", "bss2-calib/characterization")))
    case("absurd_size", edit_manifest(lambda m: m["files"]["knobs_neuron.parquet"].__setitem__("bytes", 2 ** 40)))
    case("bad_checksum_field", edit_manifest(lambda m: m["files"]["knobs_neuron.parquet"].__setitem__("sha256", "x")))
    case("chip_id_negative", edit_manifest(lambda m: m.__setitem__("chip_id", -3)))
    case("not_json", lambda p: (p / "manifest.json").write_text("this is not json {"))
    case("manifest_is_a_list", lambda p: (p / "manifest.json").write_text("[1, 2, 3]"))
    case("nan_in_manifest", lambda p: (p / "manifest.json").write_text(
        (p / "manifest.json").read_text().replace('"temperature_c": 25.0', '"temperature_c": NaN')))
    case("wrong_table_shape", wrong_shape)
    case("unknown_table", edit_manifest(lambda m: m["tables"].append("secret_table")))
    case("tampered_chip_id", tamper(lambda m: m.__setitem__("chip_id", 1)))
    case("tampered_conditions", tamper(lambda m: m["conditions"].__setitem__("temperature_tolerance_k", 50.0)))
    case("tampered_quality", tamper(lambda m: m["quality"].__setitem__("v_reset_residual_rms", 0.0)))
    case("seal_removed", tamper(lambda m: m.pop("manifest_sha256")))
    case("relabelled_v1", tamper(lambda m: m.__setitem__("schema_version", 1)))
    presets = HERE / "presets"
    presets.mkdir(exist_ok=True)
    (presets / "unknown_key.json").write_text(json.dumps({"base": "default", "turbo": True}))
    (presets / "not_json.json").write_text("{")
    _weights(HERE / "weights")


def _weights(out):
    """Model files for ``bss2-calib infer --weights``: each one defect away from a valid integer MNIST model."""
    import numpy as np

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    meta = {"format": "bss2-calib/mnist-integer-model", "schema_version": 1, "input_gain": 31, "input_shift": 8,
            "num_sends": [1, 1, 1], "relu_shifts": [2, 2], "weight_scales": [1.0, 1.0, 1.0]}

    def arrays(dtype=np.int8, fill=0):
        return {"conv": np.full((20, 1, 10, 10), fill, dtype), "fc1": np.zeros((500, 128), dtype),
                "fc2": np.zeros((128, 10), dtype)}

    np.savez_compressed(out / "nan_weights.npz", **arrays(np.float32, np.nan), metadata=np.array(json.dumps(meta)))
    np.savez_compressed(out / "nan_scale.npz", **arrays(),
                        metadata=np.array(json.dumps({**meta, "weight_scales": [float("nan"), 1.0, 1.0]})))
    (out / "not_npz.npz").write_text("these are not weights\n")


if __name__ == "__main__":
    build()
