"""Space settings: rhythm cycles on a fixed calendar, and settings on the wire."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcrew.reasons import Reason
from meshcrew.records import RecordError
from meshcrew.spaces import Period, Rhythm, SettingsChange, SpaceMeta
from meshcrew.spaces.settings import DAY_MS, WEEK_MS
from spaces_world import HOUR, T0

MONDAY = Rhythm(Period.WEEKLY, weekday=0)


def utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def test_weekly_cycles_start_on_the_weekday_at_midnight_utc() -> None:
    assert utc(T0).weekday() == 0  # the test clock starts on a Monday
    cycle = MONDAY.cycle_at(T0 + 3 * DAY_MS)
    assert (cycle.start_ms, cycle.end_ms) == (T0, T0 + WEEK_MS)
    assert T0 + 3 * DAY_MS in cycle
    assert MONDAY.cycle_at(T0 - 1).start_ms == T0 - WEEK_MS
    assert MONDAY.cycle_at(T0 + WEEK_MS).index == cycle.index + 1
    wednesday = Rhythm(Period.WEEKLY, weekday=2).cycle_at(T0)
    assert utc(wednesday.start_ms) == dt.datetime(2025, 12, 31, tzinfo=dt.UTC)


def test_a_utc_offset_moves_midnight() -> None:
    wellington = Rhythm(Period.WEEKLY, weekday=0, utc_offset_min=12 * 60)
    # 12:00 UTC on Monday is already Tuesday 00:00 in UTC+12; the cycle began Sunday 12:00 UTC
    assert wellington.cycle_at(T0 + 12 * HOUR).start_ms == T0 - 12 * HOUR
    hawaii = Rhythm(Period.DAILY, utc_offset_min=-10 * 60)
    assert hawaii.cycle_at(T0).start_ms == T0 - DAY_MS + 10 * HOUR


def test_daily_and_fortnightly_lengths() -> None:
    daily = Rhythm(Period.DAILY).cycle_at(T0 + 5 * HOUR)
    assert (daily.start_ms, daily.end_ms) == (T0, T0 + DAY_MS)
    fortnight = Rhythm(Period.FORTNIGHTLY, weekday=0).cycle_at(T0)
    assert fortnight.end_ms - fortnight.start_ms == 2 * WEEK_MS
    assert utc(fortnight.start_ms).weekday() == 0


@settings(max_examples=200, deadline=None)
@given(ts=st.integers(0, 2**45), period=st.sampled_from(list(Period)),
       weekday=st.integers(0, 6), offset=st.integers(-14 * 60, 14 * 60))
def test_every_instant_has_one_cycle_starting_on_the_weekday(ts: int, period: Period,
                                                             weekday: int, offset: int) -> None:
    rhythm = Rhythm(period, weekday, offset)
    cycle = rhythm.cycle_at(ts)
    assert cycle.start_ms <= ts < cycle.end_ms
    assert cycle.end_ms - cycle.start_ms == rhythm.length_ms
    assert rhythm.cycle_at(cycle.end_ms).start_ms == cycle.end_ms
    assert rhythm.cycle_at(cycle.start_ms - 1).end_ms == cycle.start_ms
    local_start = utc(cycle.start_ms + offset * 60_000)
    assert (local_start.hour, local_start.minute) == (0, 0)
    if period is not Period.DAILY:
        assert local_start.weekday() == weekday


def test_rhythm_and_meta_checks() -> None:
    with pytest.raises(ValueError, match="weekday"):
        Rhythm(Period.WEEKLY, weekday=7)
    with pytest.raises(ValueError, match="utc_offset_min"):
        Rhythm(Period.WEEKLY, utc_offset_min=15 * 60)
    meta = SpaceMeta("Crew", "we build things", Rhythm(Period.DAILY), parent=bytes(32))
    assert SpaceMeta.from_wire(meta.to_wire()) == meta
    for wire in ({"name": "", "rhythm": ["weekly", 0, 0]},
                 {"name": "x", "rhythm": ["hourly", 0, 0]},
                 {"name": "x", "rhythm": ["weekly", 9, 0]}, {"name": "x", "rhythm": "weekly"},
                 {"name": "x", "rhythm": ["weekly", 0, 0], "parent": b"short"}, ["not a map"]):
        with pytest.raises(RecordError) as caught:
            SpaceMeta.from_wire(wire)
        assert caught.value.reason is Reason.BAD_BODY


def test_a_change_has_one_wire_form_in_the_settings_order() -> None:
    """Whatever order a change's map comes in, it is read to the same change and written back
    with the keys in one order (a proposal's or settings post's change is kept in this form)."""
    rhythm = Rhythm(Period.WEEKLY, weekday=3, utc_offset_min=60)
    full = SettingsChange(name="Moon", purpose="p", rhythm=rhythm, quorum=50,
                          edit_by_proposal=True, keep_checkins=2, keep_posts=3)
    wire = full.to_wire()
    assert list(wire) == ["name", "purpose", "rhythm", "quorum", "ebp", "kc", "kp"]
    assert wire["rhythm"] == rhythm.to_wire()
    assert SettingsChange.from_wire(dict(reversed(wire.items()))) == full
    assert list(full.changed()) == ["name", "purpose", "rhythm", "quorum", "edit_by_proposal",
                                    "keep_checkins", "keep_posts"]
    assert SettingsChange(quorum=50, keep_posts=0).to_wire() == {"quorum": 50, "kp": 0}
    assert SettingsChange().to_wire() == {}
    with pytest.raises(RecordError, match="no setting 'edit_by_proposal'"):
        SettingsChange.from_wire({"edit_by_proposal": True})
