"""Target / Options validation and their manifest round trip."""
import pytest

from bss2_calib.calib import CalibValueError, CalibWarning, ConditionOptions, KnobOptions, Options, TableOptions, Target
from bss2_calib.calib.config import STAGES, resolve_stages


def test_defaults_round_trip_through_dicts():
    t, o = Target(), Options()
    assert Target.from_dict(t.to_dict()) == t
    assert Options.from_dict(o.to_dict()) == o
    assert o.stages == STAGES


@pytest.mark.parametrize("kwargs", [
    {"gain_lsb_per_unit": 0.0}, {"gain_lsb_per_unit": float("nan")}, {"gain_lsb_per_unit": "0.002"},
    {"baseline_read": 300}, {"cadc_read_range": (220, 20)}, {"cadc_reference_v": (0.3, 1.5)},
    {"synin_gain": "mean"}, {"driver_low_activation": 0}, {"driver_low_activation": 2.0},
])
def test_target_refuses_values_outside_the_physical_range(kwargs):
    with pytest.raises(CalibValueError):
        Target(**kwargs)


def test_target_warns_outside_the_recommended_range():
    with pytest.warns(CalibWarning, match="recommended"):
        Target(gain_lsb_per_unit=0.004)


@pytest.mark.parametrize("make", [
    lambda: KnobOptions(algorithm="magic"), lambda: KnobOptions(repeats=0), lambda: KnobOptions(reads=True),
    lambda: TableOptions(synapse_num_sends=(16, 10)), lambda: TableOptions(loss="l2"),
    lambda: TableOptions(linear_range_lsb=200), lambda: ConditionOptions(wait_between_events=0),
    lambda: ConditionOptions(num_sends_ref=300), lambda: Options(seed=-1), lambda: Options(knobs="fast"),
])
def test_options_refuse_bad_values(make):
    with pytest.raises(CalibValueError):
        make()


def test_stages_expand_aliases_and_keep_dependency_order():
    assert resolve_stages("synapses,offsets") == ("offsets", "synapses")
    assert resolve_stages(["knobs"]) == STAGES[:6]
    assert resolve_stages("tables") == STAGES[6:]
    assert Options(stages="reset").stages == ("reset",)


@pytest.mark.parametrize("stages, msg", [("nonsense", "unknown stage"), ("transfer,offsets", "needs stage"),
                                         ("", "unknown stage"), ([], "no stage")])
def test_bad_stage_selections_are_refused(stages, msg):
    with pytest.raises(CalibValueError, match=msg):
        resolve_stages(stages)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(CalibValueError, match="unknown field"):
        Options.from_dict({"stages": ["reset"], "turbo": True})


def test_public_functions_refuse_bad_arguments():
    from bss2_calib import calib
    from bss2_calib.chipsim import Chip

    with pytest.raises(CalibValueError, match="observable interface"):
        calib.calibrate("chip 0")
    with pytest.raises(CalibValueError, match="calib.Target"):
        calib.calibrate(Chip(0), target={"gain": 0.002})
    with pytest.raises(CalibValueError, match="calib.Options"):
        calib.calibrate(Chip(0), options="fast")
    with pytest.raises(CalibValueError, match="path"):
        calib.load(42)
    res = calib.calibrate(Chip(0), options=Options(stages=("reset",)))
    with pytest.raises(CalibValueError, match="num_sends must be an integer"):
        res.check(num_sends="8")
    with pytest.raises(CalibValueError, match="vectors"):
        calib.verify(res, Chip(0), vectors=0)
    with pytest.raises(CalibValueError, match="expected a chip"):
        res.apply_to(object())
