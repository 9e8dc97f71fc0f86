"""Regenerate the bad-input corpus (artifacts/ and presets/ next to this file).

    python tests/data/bad/make_corpus.py

Every case is a directory (or file) derived from one small valid artifact by a
single defect; ``cases.json`` lists the CLI invocations that use them with the
expected exit code and one-line message. ``{artifact}`` in an argument is the
case's directory, ``{good}`` a valid artifact, ``{store}`` the test's store.
"""
import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _manifest(p):
    return json.loads((p / "manifest.json").read_text())


def _write_manifest(p, m):
    (p / "manifest.json").write_text(json.dumps(m, indent=1))


def build():
    sys.path.insert(0, str(HERE.parents[2]))
    import calib
    from chipsim import Chip

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

    def edit_manifest(fn):
        def _e(p):
            m = _manifest(p)
            fn(m)
            _write_manifest(p, m)
        return _e

    def outside(m):
        m["files"]["../../outside.parquet"] = m["files"].pop("knobs_driver.parquet")

    def absolute(m):
        m["files"]["/etc/passwd.parquet"] = m["files"].pop("knobs_driver.parquet")

    def wrong_shape(p):
        import calib.artifact as art
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
    presets = HERE / "presets"
    presets.mkdir(exist_ok=True)
    (presets / "unknown_key.json").write_text(json.dumps({"base": "default", "turbo": True}))
    (presets / "not_json.json").write_text("{")


if __name__ == "__main__":
    build()
