"""The schedule: the activeHours grammar, the instants a stack wakes and sleeps, and its hours per month,
with fixed clocks across Europe/Berlin's daylight-saving changes (last Sunday of March and of October)
and in a zone with a half-hour offset (Asia/Kolkata, UTC+05:30)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from infra.schedule import ScheduleError, Stretch, parse_active_hours, parse_schedule

BERLIN_OFFICE = parse_schedule("Europe/Berlin", "Mon-Fri 08:00-20:00")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(("instant", "active"), [
    (utc(2026, 12, 1, 6, 59), False),  # Tue 07:59 CET
    (utc(2026, 12, 1, 7, 0), True),  # Tue 08:00 CET
    (utc(2026, 12, 1, 18, 59), True),  # Tue 19:59 CET
    (utc(2026, 12, 1, 19, 0), False),  # Tue 20:00 CET: the end is not served
    (utc(2026, 12, 5, 12, 0), False),  # Saturday
    (utc(2026, 7, 1, 6, 0), True),  # Wed 08:00 CEST (summer: UTC+2)
    (utc(2026, 7, 1, 5, 59), False),
])
def test_active_at_a_fixed_instant(instant, active):
    assert BERLIN_OFFICE.active_at(instant) is active


def test_the_weekend_across_the_spring_change_wakes_at_eight_summer_time():
    # Fri 27 March 2026 20:00 CET is 19:00 UTC; the clocks go forward on Sunday the 29th;
    # Monday the 30th 08:00 CEST is 06:00 UTC.
    friday_evening = utc(2026, 3, 27, 18, 30)
    assert BERLIN_OFFICE.next_sleep(friday_evening) == utc(2026, 3, 27, 19, 0)
    assert BERLIN_OFFICE.next_wake(friday_evening) == utc(2026, 3, 30, 6, 0)
    assert BERLIN_OFFICE.next_sleep(utc(2026, 3, 30, 6, 0)) == utc(2026, 3, 30, 18, 0)


def test_the_weekend_across_the_autumn_change_wakes_at_eight_winter_time():
    # the clocks go back on Sunday 25 October 2026: Friday 20:00 CEST = 18:00 UTC, Monday 08:00 CET = 07:00 UTC
    friday_evening = utc(2026, 10, 23, 17, 0)
    assert BERLIN_OFFICE.next_sleep(friday_evening) == utc(2026, 10, 23, 18, 0)
    assert BERLIN_OFFICE.next_wake(friday_evening) == utc(2026, 10, 26, 7, 0)


def test_a_window_on_the_change_night_keeps_its_wall_clock_hours():
    night = parse_schedule("Europe/Berlin", "Sun 01:00-04:00")
    # 29 March 2026: 01:00 CET = 00:00 UTC; 04:00 CEST = 02:00 UTC: two real hours
    assert night.next_wake(utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 0, 0)
    assert night.next_sleep(utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 2, 0)
    assert night.active_hours_between(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 12, 0)) == 2
    # 25 October 2026: 01:00 CEST = 23:00 UTC the day before; 04:00 CET = 03:00 UTC: four real hours
    assert night.active_hours_between(utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 12, 0)) == 4


def test_a_time_the_spring_change_skips_happens_an_hour_later_by_the_clock():
    skipped = parse_schedule("Europe/Berlin", "Sun 02:30-05:00")
    wake = skipped.next_wake(utc(2026, 3, 28, 12, 0))
    assert wake == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    assert wake.astimezone(skipped.zone).time() == time(3, 30)


def test_active_hours_per_month_count_the_real_hours():
    sundays = parse_schedule("Europe/Berlin", "Sun 00:00-24:00")
    assert sundays.active_hours_in_month(2026, 3) == 5 * 24 - 1  # 1, 8, 15, 22, 29 (23 hours long)
    assert sundays.active_hours_in_month(2026, 10) == 4 * 24 + 1  # 4, 11, 18, 25 (25 hours long)
    assert BERLIN_OFFICE.active_hours_in_month(2026, 12) == 23 * 12  # 23 weekdays in December 2026
    assert BERLIN_OFFICE.weekly_hours == 60


def test_a_half_hour_zone_wakes_on_the_half_hour_in_utc():
    india = parse_schedule("Asia/Kolkata", "Mon-Fri 09:00-17:00")
    tuesday_night = utc(2026, 12, 1, 12, 0)  # Tue 17:30 IST
    assert india.active_at(tuesday_night) is False
    assert india.next_wake(tuesday_night) == utc(2026, 12, 2, 3, 30)  # Wed 09:00 IST
    assert india.next_sleep(tuesday_night) == utc(2026, 12, 2, 11, 30)  # Wed 17:00 IST
    assert india.active_at(utc(2026, 12, 2, 3, 30)) is True


def test_windows_that_touch_are_one_stretch_and_sunday_runs_on_into_monday():
    assert parse_active_hours("Mon 20:00-24:00; Tue 00:00-08:00") == (Stretch(1200, 1920),)
    assert parse_active_hours("Sun 22:00-24:00; Mon 00:00-06:00") == (Stretch(6 * 1440 + 1320, 7 * 1440 + 360),)
    overnight = parse_schedule("UTC", "Sun 22:00-24:00; Mon 00:00-06:00")
    assert overnight.active_at(utc(2026, 12, 7, 5, 0)) is True  # Monday 05:00
    assert overnight.next_sleep(utc(2026, 12, 6, 23, 0)) == utc(2026, 12, 7, 6, 0)


def test_grammar_day_lists_ranges_that_wrap_and_several_times():
    assert parse_active_hours("Mon,Wed 08:00-09:00") == (Stretch(480, 540), Stretch(2 * 1440 + 480, 2 * 1440 + 540))
    assert [s.start // 1440 for s in parse_active_hours("Fri-Mon 10:00-11:00")] == [0, 4, 5, 6]
    assert parse_active_hours("Tue 08:00-12:00,13:00-18:00") == (Stretch(1440 + 480, 1440 + 720), Stretch(1440 + 780, 1440 + 1080))
    assert parse_schedule("UTC", "Mon-Sun 00:00-24:00").always
    assert parse_schedule("UTC", "Mon-Sun 00:00-24:00").next_wake(utc(2026, 12, 1)) is None


def test_transitions_group_the_days_of_equal_times():
    schedule = parse_schedule("Europe/Berlin", "Mon-Thu 08:00-20:00; Fri 08:00-16:00")
    assert schedule.transitions() == (("wake", ("Mon", "Tue", "Wed", "Thu", "Fri"), time(8, 0)),
                                      ("sleep", ("Fri",), time(16, 0)), ("sleep", ("Mon", "Tue", "Wed", "Thu"), time(20, 0)))


@pytest.mark.parametrize(("text", "message"), [
    ("", "no window"),
    ("Mon-Fri", "'Mon-Fri': a window is DAYS HH:MM-HH:MM"),
    ("Mo-Fr 08:00-20:00", "'Mo-Fr': days are Mon, Tue"),
    ("Mon 20:00-08:00", "'Mon 20:00-08:00': 20:00-08:00 ends before it starts"),
    ("Mon 08:00-24:30", "'Mon 08:00-24:30': 24:30 is not a time of day"),
    ("Mon 08:61-09:00", "'Mon 08:61-09:00': 08:61 is not a time of day"),
    ("Mon 8:00-9:00", "'Mon 8:00-9:00': '8:00-9:00' is not HH:MM-HH:MM"),
])
def test_text_outside_the_grammar_is_refused_saying_where(text, message):
    with pytest.raises(ScheduleError) as raised:
        parse_active_hours(text)
    assert str(raised.value).startswith(message), raised.value


def test_an_unknown_timezone_is_refused():
    with pytest.raises(ScheduleError, match="'Europe/Bonn' is not an IANA timezone"):
        parse_schedule("Europe/Bonn", "Mon 08:00-09:00")


def test_the_next_offset_change_is_found_to_the_minute():
    assert BERLIN_OFFICE.offset_change_after(utc(2026, 12, 1)) == utc(2027, 3, 28, 1, 0)  # last Sunday of March, 01:00 UTC
    assert BERLIN_OFFICE.offset_change_after(utc(2027, 3, 28, 1, 0)) == utc(2027, 10, 31, 1, 0)  # last Sunday of October
    assert parse_schedule("Asia/Kolkata", "Mon 09:00-17:00").offset_change_after(utc(2026, 12, 1)) is None


def test_utc_transitions_follow_the_offset_at_the_instant_and_cross_midnight():
    assert BERLIN_OFFICE.utc_transitions(utc(2026, 12, 1))[0] == ("wake", ("Mon", "Tue", "Wed", "Thu", "Fri"), time(7, 0))
    assert BERLIN_OFFICE.utc_transitions(utc(2027, 7, 1))[0] == ("wake", ("Mon", "Tue", "Wed", "Thu", "Fri"), time(6, 0))
    early = parse_schedule("Asia/Kolkata", "Mon 03:00-10:00")
    assert early.utc_transitions(utc(2026, 12, 1)) == (("wake", ("Sun",), time(21, 30)), ("sleep", ("Mon",), time(4, 30)))


def test_the_asleep_answer_names_the_wake_that_follows_in_the_stacks_zone():
    friday = BERLIN_OFFICE.stretches[-1]
    assert BERLIN_OFFICE.asleep_answer(friday) == {
        "error": "asleep", "message": "outside its active hours; it wakes up Mon 08:00 Europe/Berlin", "wakes_at": "Mon 08:00",
        "timezone": "Europe/Berlin", "active_hours": "Mon-Fri 08:00-20:00"}
    assert BERLIN_OFFICE.wake_after(BERLIN_OFFICE.stretches[0]) == ("Tue", time(8, 0))
