"""Fuzzing the artifact loader: mutated files never raise anything but the project's artifact errors."""
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bss2_calib import calib
from bss2_calib.calib import ArtifactError
from bss2_calib.calib.artifact import manifest_digest

GOOD = Path(__file__).resolve().parent / "data" / "bad" / "artifacts" / "good"
FILES = sorted(p.name for p in GOOD.iterdir())
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                    max_leaves=10)


def _load_mutated(mutate):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "a"
        shutil.copytree(GOOD, p)
        mutate(p)
        try:
            res = calib.load(p)
        except ArtifactError as err:
            assert "\n" not in str(err)
            return "refused"
        # whatever loads is usable: its summary, codes and condition checks work or refuse cleanly
        res.summary()
        assert set(res.knob_codes()) >= {"v_reset", "syn_i_bias_dac", "hagen_dac_offset"}
        try:
            res.check(num_sends=8, wait_between_events=5, temperature_c=25.0)
        except ArtifactError:
            pass
        return "loaded"


settings.register_profile("artifact", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


@settings(settings.get_profile("artifact"))
@given(name=st.sampled_from(FILES), pos=st.floats(0, 1, exclude_max=True), flips=st.integers(1, 8),
       data=st.data())
def test_byte_flips(name, pos, flips, data):
    def mutate(p):
        f = p / name
        b = bytearray(f.read_bytes())
        for _ in range(flips):
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] ^= data.draw(st.integers(1, 255))
        f.write_bytes(bytes(b))

    assert _load_mutated(mutate) in ("refused", "loaded")


@settings(settings.get_profile("artifact"))
@given(name=st.sampled_from(FILES), frac=st.floats(0, 1), tail=st.binary(max_size=64))
def test_truncation_and_garbage(name, frac, tail):
    def mutate(p):
        f = p / name
        b = f.read_bytes()
        f.write_bytes(b[: int(len(b) * frac)] + tail)

    out = _load_mutated(mutate)
    if tail or frac < 1:
        assert out == "refused" or name == "manifest.json"


@settings(settings.get_profile("artifact"))
@given(path=st.lists(st.sampled_from(["chip_id", "preset", "conditions", "files", "tables", "steps", "kind",
                                      "schema_version", "target", "options", "name", "sha256", "bytes",
                                      "temperature_c", "num_sends_min", "knobs_driver.parquet", 0, 1]),
                     min_size=1, max_size=3),
       value=JSON, reseal=st.booleans())
def test_manifest_value_replacement(path, value, reseal):
    """Edited manifests, with a stale seal (refused by it) or a recomputed one (reaching the field checks)."""
    changed = []

    def mutate(p):
        m = json.loads((p / "manifest.json").read_text())
        original = json.dumps(m, sort_keys=True)
        node = m
        for key in path[:-1]:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node = node[key]
            else:
                break
        last = path[-1]
        if isinstance(node, dict):
            node[str(last)] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        changed.append(json.dumps(m, sort_keys=True) != original)
        if reseal and isinstance(m.get("manifest_sha256"), str):
            m["manifest_sha256"] = manifest_digest(m)
        (p / "manifest.json").write_text(json.dumps(m))

    out = _load_mutated(mutate)
    assert out in ("refused", "loaded")
    if not reseal and changed[0]:
        assert out == "refused"  # any edit behind the seal's back


@settings(settings.get_profile("artifact"))
@given(name=st.sampled_from(FILES))
def test_deleted_file(name):
    assert _load_mutated(lambda p: (p / name).unlink()) == "refused"
