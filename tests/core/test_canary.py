"""The canary state machine (core/canary.py): one test per rule of its docstring, and a property over
random runs with crashes, failing checks and closing windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stackyard.core.canary import (
    CanaryPlan, CanaryRecord, CheckResult, Kind, decide, finished_record, parse_plan, progress,
)
from stackyard.exceptions import InputError

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
PLAN = CanaryPlan(steps=(5, 25, 50), interval=60, max_failed_checks=2)
OK = (CheckResult("error-rate", True, 0.01, 0.05),)
BAD = (CheckResult("error-rate", False, 0.3, 0.05, "above max"),)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rec(t: float, kind: Kind, weight: int = 0, checks=(), run="r1", reason="") -> CanaryRecord:
    return CanaryRecord(at(t), kind, weight, run, tuple(checks), reason)


# --- the plan ---

def test_plan_defaults_are_five_twenty_five_fifty():
    assert parse_plan(None, "stacks.yaml: stack prod").steps == (5, 25, 50)


@pytest.mark.parametrize("data, words", [
    ({"steps": [25, 5]}, "canary.steps: weights [25, 5] must increase strictly"),
    ({"steps": [5, 100]}, "canary.steps: weight 100 is not between 1 and 99"),
    ({"steps": []}, "canary.steps: a list of weights"),
    ({"steps": [5, "x"]}, "canary.steps[1]: a weight"),
    ({"interval": 0}, "canary.interval: seconds, an integer of at least 1, got 0"),
    ({"max_failed_checks": 0}, "canary.max_failed_checks: an integer of at least 1"),
    ({"on_window_close": "ignore"}, "canary.on_window_close: 'ignore' is not one of pause, abort"),
    ({"step": [5]}, "canary: unknown field(s) step"),
    ({"interval": "5m"}, "canary.interval: seconds, an integer of at least 1, got '5m'"),
])
def test_bad_plan_names_file_stack_and_field(data, words):
    with pytest.raises(InputError) as error:
        parse_plan(data, "include/stacks.yaml: stack prod")
    assert str(error.value).startswith("include/stacks.yaml: stack prod: ")
    assert words in str(error.value)


def test_record_round_trips_and_bad_records_are_named():
    record = rec(3, Kind.CHECK, 25, BAD)
    assert CanaryRecord.from_dict(record.to_dict()) == record
    with pytest.raises(InputError, match="weight"):
        CanaryRecord.from_dict({**record.to_dict(), "weight": 250})


# --- rule 1 ---

def test_rule1_no_record_sets_the_first_step():
    action = decide(PLAN, [], now=T0, run_id="r1")
    assert (action.name, action.weight, action.effects) == ("set_weight", 5, (("set_weight", 5),))
    assert action.record(T0, "r1") == CanaryRecord(T0, Kind.WEIGHT, 5, "r1", (), action.reason)


def test_rule1_never_starts_outside_the_window():
    action = decide(PLAN, [], now=T0, run_id="r1", window_open=False, window_reason="freeze 2026-12-01")
    assert action.name == "wait" and "freeze" in action.reason and action.effects == ()


# --- rule 2 ---

def test_rule2_waits_an_interval_after_a_weight_change():
    action = decide(PLAN, [rec(0, Kind.WEIGHT, 5)], now=at(30), run_id="r1")
    assert action.name == "wait" and action.until == at(60)


def test_rule2_analyses_when_the_interval_has_passed():
    assert decide(PLAN, [rec(0, Kind.WEIGHT, 5)], now=at(60), run_id="r1").name == "analyse"


def test_rule2_a_failing_check_below_the_threshold_waits_and_analyses_again():
    history = [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, BAD)]
    assert decide(PLAN, history, now=at(90), run_id="r1").until == at(120)
    assert decide(PLAN, history, now=at(120), run_id="r1").name == "analyse"


# --- rule 3 ---

def test_rule3_a_passing_check_advances_to_the_next_step():
    action = decide(PLAN, [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, OK)], now=at(60), run_id="r1")
    assert (action.name, action.weight) == ("set_weight", 25)


def test_rule3_after_the_last_step_promotes_stable_first_then_weight_zero_then_remove():
    history = [rec(0, Kind.WEIGHT, 50), rec(60, Kind.CHECK, 50, OK)]
    action = decide(PLAN, history, now=at(60), run_id="r1")
    assert action.name == "promote"
    assert action.effects == (("promote_stable",), ("set_weight", 0), ("remove",))


def test_rule3_a_finished_canary_is_done():
    history = [rec(0, Kind.WEIGHT, 50), rec(60, Kind.CHECK, 50, OK), rec(61, Kind.PROMOTE),
               finished_record(at(62), "r1", "promoted")]
    action = decide(PLAN, history, now=at(70), run_id="r2")
    assert action.name == "done" and "promoted" in action.reason
    assert progress(PLAN, history).weight == 0


# --- rule 4 ---

def test_rule4_reaching_max_failed_checks_aborts_weight_zero_first_and_names_the_check():
    history = [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, BAD), rec(120, Kind.CHECK, 5, BAD)]
    action = decide(PLAN, history, now=at(120), run_id="r1")
    assert action.name == "abort" and action.effects == (("set_weight", 0), ("remove",))
    assert "error-rate" in action.reason and "0.3" in action.reason


def test_rule4_failures_count_over_the_whole_canary():
    history = [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, BAD), rec(120, Kind.CHECK, 5, OK),
               rec(121, Kind.WEIGHT, 25), rec(181, Kind.CHECK, 25, BAD)]
    assert decide(PLAN, history, now=at(181), run_id="r1").name == "abort"


def test_rule4_abort_is_allowed_in_a_closed_window():
    history = [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, BAD), rec(120, Kind.CHECK, 5, BAD)]
    assert decide(PLAN, history, now=at(120), run_id="r1", window_open=False).name == "abort"


# --- rule 5 ---

def test_rule5_pause_holds_the_weight_in_a_closed_window():
    history = [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, OK)]
    action = decide(PLAN, history, now=at(70), run_id="r1", window_open=False, window_reason="outside 09-17")
    assert action.name == "wait" and "paused at weight 5" in action.reason and action.effects == ()


def test_rule5_pause_keeps_checking_the_held_share():
    history = [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, OK)]
    assert decide(PLAN, history, now=at(120), run_id="r1", window_open=False).name == "analyse"


def test_rule5_pause_continues_when_the_window_reopens():
    history = [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, OK)]
    assert decide(PLAN, history, now=at(4000), run_id="r1").weight == 25


def test_rule5_abort_policy_aborts_a_started_canary_when_the_window_closes():
    plan = PLAN.model_copy(update={"on_window_close": "abort"})
    action = decide(plan, [rec(0, Kind.WEIGHT, 5)], now=at(10), run_id="r1", window_open=False,
                    window_reason="freeze")
    assert action.name == "abort" and "freeze" in action.reason


# --- rule 6 ---

def test_rule6_an_unfinished_abort_is_finished_by_the_next_run_and_keeps_the_share_recorded():
    history = [rec(0, Kind.WEIGHT, 25), rec(10, Kind.ABORT)]
    assert progress(PLAN, history).weight == 25  # not 0 until the abort finished
    action = decide(PLAN, history, now=at(20), run_id="r2")
    assert action.name == "abort" and action.effects[0] == ("set_weight", 0)


def test_rule6_an_unfinished_promotion_is_finished():
    history = [rec(0, Kind.WEIGHT, 50), rec(60, Kind.CHECK, 50, OK), rec(61, Kind.PROMOTE)]
    assert decide(PLAN, history, now=at(70), run_id="r2", window_open=False).name == "promote"


# --- rule 7 ---

def test_rule7_a_live_owner_keeps_the_canary():
    action = decide(PLAN, [rec(0, Kind.WEIGHT, 25, run="r1")], now=at(10), run_id="r2", owner_live=True)
    assert action.name == "wait" and "r1" in action.reason


def test_rule7_resume_sets_the_recorded_weight_again_and_observes_it_anew():
    history = [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, OK), rec(61, Kind.WEIGHT, 25)]
    action = decide(PLAN, history, now=at(100), run_id="r2")
    assert (action.name, action.weight) == ("set_weight", 25) and "resuming step 2" in action.reason
    resumed = history + [action.record(at(100), "r2")]
    assert decide(PLAN, resumed, now=at(130), run_id="r2").until == at(160)


def test_rule7_a_plan_edited_mid_canary_continues_from_the_step_at_or_below_the_weight():
    plan = PLAN.model_copy(update={"steps": (10, 30, 60)})
    history = [rec(0, Kind.WEIGHT, 25), rec(60, Kind.CHECK, 25, OK)]
    assert decide(plan, history, now=at(60), run_id="r1").weight == 30


def test_rule7_resume_keeps_failures_counted():
    plan = PLAN.model_copy(update={"max_failed_checks": 1})
    history = [rec(0, Kind.WEIGHT, 5), rec(60, Kind.CHECK, 5, BAD)]
    assert decide(plan, history, now=at(70), run_id="r2").name == "abort"


def test_rule7_on_crash_abort_aborts():
    plan = PLAN.model_copy(update={"on_crash": "abort"})
    action = decide(plan, [rec(0, Kind.WEIGHT, 25)], now=at(10), run_id="r2")
    assert action.name == "abort" and "on_crash is abort" in action.reason


def test_rule7_a_record_older_than_resume_within_aborts():
    plan = PLAN.model_copy(update={"resume_within": 600})
    assert decide(plan, [rec(0, Kind.WEIGHT, 25)], now=at(599), run_id="r2").name == "set_weight"
    assert decide(plan, [rec(0, Kind.WEIGHT, 25)], now=at(601), run_id="r2").name == "abort"


def test_rule7_resume_in_a_closed_window_under_abort_policy_aborts():
    plan = PLAN.model_copy(update={"on_window_close": "abort"})
    assert decide(plan, [rec(0, Kind.WEIGHT, 25)], now=at(10), run_id="r2", window_open=False).name == "abort"


def test_naive_now_is_refused():
    with pytest.raises(InputError, match="timezone"):
        decide(PLAN, [], now=datetime(2026, 12, 1), run_id="r1")


# --- the property ---

class World:
    """The traffic layer and the stable release as the operator would drive them (write-ahead)."""

    def __init__(self):
        self.weight, self.canary, self.stable_new, self.calls = 0, False, False, []

    def apply(self, effect):
        self.calls.append(effect)
        if effect[0] == "set_weight":
            self.weight = effect[1]
            self.canary = self.canary or effect[1] > 0
        elif effect[0] == "remove":
            self.canary = False
        else:
            self.stable_new = True


@settings(max_examples=300, deadline=None)
@given(plan=st.builds(CanaryPlan, steps=st.lists(st.integers(1, 99), min_size=1, max_size=4, unique=True)
                      .map(lambda s: tuple(sorted(s))), interval=st.integers(1, 120),
                      max_failed_checks=st.integers(1, 3), on_window_close=st.sampled_from(["pause", "abort"]),
                      on_crash=st.sampled_from(["resume", "abort"])),
       script=st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(0, 3), st.integers(1, 200)),
                       min_size=1, max_size=60))
def test_property_no_path_ends_with_a_share_and_no_live_canary_and_abort_sets_zero_first(plan, script):
    """Each script item: (check passes, window open, crash point: 0 none / 1 after recording / 2 after
    the first effect / 3 after all effects, seconds to the next tick). Runs crash and restart; at the
    end every canary is finished with weight 0 and no canary left."""
    world, history, run, now = World(), [], 0, T0
    items = list(script)
    for tick in range(400):
        passes, window, crash, step = items[tick % len(items)] if tick < len(items) else (True, True, 0, 200)
        action = decide(plan, history, now=now, run_id=f"r{run}", window_open=window, window_reason="closed")
        if action.name == "done":
            break
        if action.name == "abort":
            assert action.effects[0] == ("set_weight", 0)
        line = action.record(now, f"r{run}")
        if line is not None:
            history.append(line)
        if crash == 1 and line is not None and tick < len(items):
            run += 1
        else:
            for index, effect in enumerate(action.effects):
                world.apply(effect)
                if crash == 2 and index == 0 and tick < len(items):
                    break
            else:
                if action.name == "analyse":
                    history.append(CanaryRecord(now, Kind.CHECK, progress(plan, history).weight, f"r{run}",
                                                OK if passes else BAD))
                if action.name in ("promote", "abort"):
                    if crash == 3 and tick < len(items):
                        run += 1
                    else:
                        history.append(finished_record(now, f"r{run}", {"promote": "promoted", "abort": "aborted"}[action.name]))
            if crash == 2 and tick < len(items):
                run += 1
        # the history always covers the live share: recorded weight >= real weight, or an abort/promotion
        # waits to be finished
        state = progress(plan, history)
        assert world.weight <= state.weight or state.pending is not None
        now += timedelta(seconds=step)
    else:
        pytest.fail("the canary never finished")
    assert world.weight == 0 and not world.canary
    for index, call in enumerate(world.calls):
        if call == ("remove",):
            assert world.calls[index - 1] == ("set_weight", 0)


# --- placeholders ---

from stackyard.core.canary import check_context, substitute  # noqa: E402

CTX = check_context(service="shop", release="shop-canary", namespace="prod", stack="prod", interval_seconds=60)


def test_placeholders_fill_known_names_and_leave_promql_braces():
    assert substitute('rate(x{svc="{service}",ns="{namespace}"}[{interval}])', CTX, where="q") == \
        'rate(x{svc="shop",ns="prod"}[60s])'


@pytest.mark.parametrize("template, values, words", [
    ("{servce}", CTX, "unknown placeholder {servce}"),
    ("{service}", {**CTX, "service": 'a"} or vector(1)'}, "not a valid service"),
    ("{interval}", {**CTX, "interval": "5m] or x["}, "not a valid interval"),
    ("{stack}", {"service": "s"}, "no value for {stack}"),
])
def test_placeholders_refuse_unknown_names_and_unsafe_values(template, values, words):
    with pytest.raises(InputError) as error:
        substitute(template, values, where="check err: query")
    assert str(error.value).startswith("check err: query: ") and words in str(error.value)


def test_placeholder_values_are_escaped_by_the_caller():
    assert substitute("/{service}", CTX, where="u", escape=lambda v: v.upper()) == "/SHOP"
