"""Mood: WMO families, seasons (both hemispheres), sun times, time of day, bands, descriptions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from ai_wallpaper.scene import mood as m


@pytest.mark.parametrize(
    ("code", "family"),
    [
        (0, "clear"),
        (1, "clear"),
        (2, "cloudy"),
        (3, "overcast"),
        (45, "fog"),
        (48, "fog"),
        (51, "drizzle"),
        (57, "drizzle"),
        (61, "rain"),
        (67, "rain"),
        (81, "rain"),
        (71, "snow"),
        (77, "snow"),
        (86, "snow"),
        (95, "storm"),
        (99, "storm"),
        (4, None),
        (None, None),
    ],
)
def test_wmo_code_families(code: int | None, family: str | None) -> None:
    assert m.condition_family(code) == family


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("Chance Showers And Thunderstorms", "storm"),
        ("Light Snow", "snow"),
        ("Rain Likely", "rain"),
        ("Patchy Fog", "fog"),
        ("Mostly Cloudy", "overcast"),
        ("Partly Sunny", "cloudy"),
        ("Mostly Sunny", "clear"),
        ("Clear", "clear"),
        ("Windy", None),
    ],
)
def test_nws_text_families(text: str, family: str | None) -> None:
    assert m.condition_from_text(text) == family


def test_seasons_flip_in_the_southern_hemisphere() -> None:
    july, january, april, october = (
        date(2026, 7, 10),
        date(2026, 1, 10),
        date(2026, 4, 10),
        date(2026, 10, 10),
    )
    assert [m.season_for(d, 51.5) for d in (july, january, april, october)] == [
        "summer",
        "winter",
        "spring",
        "autumn",
    ]
    assert [m.season_for(d, -33.9) for d in (july, january, april, october)] == [
        "winter",
        "summer",
        "autumn",
        "spring",
    ]
    assert m.season_for(july, None) == "summer"  # unknown latitude: northern calendar


def _minutes(a: datetime | None, b: datetime) -> float:
    assert a is not None
    return abs((a - b).total_seconds()) / 60


def test_sun_times_match_published_tables() -> None:
    london = m.sun_times(51.5074, -0.1278, date(2024, 6, 21))  # 04:43 / 21:21 BST
    assert _minutes(london.sunrise, datetime(2024, 6, 21, 3, 43, tzinfo=UTC)) < 3
    assert _minutes(london.sunset, datetime(2024, 6, 21, 20, 21, tzinfo=UTC)) < 3
    sydney = m.sun_times(-33.8688, 151.2093, date(2024, 6, 21))  # 07:00 / 16:54 AEST (UTC+10)
    assert _minutes(sydney.sunrise, datetime(2024, 6, 20, 21, 0, tzinfo=UTC)) < 3
    assert _minutes(sydney.sunset, datetime(2024, 6, 21, 6, 54, tzinfo=UTC)) < 3
    assert m.sun_times(78.2, 15.6, date(2024, 6, 21)).polar == "day"  # Svalbard
    assert m.sun_times(78.2, 15.6, date(2024, 12, 21)).polar == "night"


def test_time_of_day_from_sun_boundaries() -> None:
    rise, sset = datetime(2026, 3, 1, 7, 0, tzinfo=UTC), datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
    cases = {
        "04:00": "night",
        "06:30": "dawn",
        "07:40": "dawn",
        "12:00": "day",
        "17:30": "golden_hour",
        "18:10": "golden_hour",
        "18:30": "dusk",
        "19:30": "night",
    }
    for hhmm, expected in cases.items():
        h, mi = map(int, hhmm.split(":"))
        assert m.time_of_day_from_sun(datetime(2026, 3, 1, h, mi, tzinfo=UTC), rise, sset) == expected, hhmm


def test_time_of_day_bases() -> None:
    lisbon_tz = timezone(timedelta(0))
    noon = datetime(2026, 11, 28, 12, 0, tzinfo=lisbon_tz)
    assert m.time_of_day(noon, 38.72, -9.14) == ("day", "astronomical")
    # Sunset in Lisbon on 28 Nov is about 17:17 UTC: 16:50 is golden hour by the sun.
    assert m.time_of_day(noon.replace(hour=16, minute=50), 38.72, -9.14) == ("golden_hour", "astronomical")
    # Without a location the wall clock of `now` decides: 16:50 is still "day" on fixed hours.
    assert m.time_of_day(noon.replace(hour=16, minute=50), None, None) == ("day", "clock")
    assert m.time_of_day(noon.replace(hour=23), None, None) == ("night", "clock")
    rise, sset = noon.replace(hour=13), noon.replace(hour=20)  # the report's times win
    assert m.time_of_day(noon, 38.72, -9.14, rise, sset) == ("night", "weather")
    assert m.time_of_day(datetime(2026, 12, 21, 12, tzinfo=UTC), 78.2, 15.6) == ("night", "astronomical")


def test_bands() -> None:
    assert [m.temperature_band(t) for t in (-5, 0, 9.9, 15, 25, 35, None)] == [
        "freezing",
        "cold",
        "cold",
        "mild",
        "warm",
        "hot",
        None,
    ]
    assert [m.wind_band(w) for w in (3, 12, 35, 80, None)] == ["calm", "breezy", "windy", "gale", None]


def test_build_mood_with_weather() -> None:
    now = datetime(2026, 11, 28, 7, 40, tzinfo=UTC)
    weather = {
        "weather_code": 45,
        "condition": "fog",
        "temperature_c": 4.5,
        "wind_kmh": 40.0,
        "sunrise": "2026-11-28T07:30:00+00:00",
        "sunset": "2026-11-28T17:17:00+00:00",
        "observed_at": "2026-11-28T07:30",
    }
    mood = m.build_mood(now, latitude=38.72, longitude=-9.14, place="Lisbon", weather=weather, source="live")
    assert mood["condition"] == "fog" and mood["time_of_day"] == "dawn" and mood["time_basis"] == "weather"
    assert mood["season"] == "autumn" and mood["temperature_band"] == "cold" and mood["wind"] == "windy"
    assert mood["hemisphere"] == "north" and mood["location"] == "Lisbon" and mood["source"] == "live"
    assert mood["description"] == "a foggy, cold, windy autumn dawn"


def test_sun_times_from_another_day_are_not_used() -> None:
    weather = {
        "condition": "clear",
        "sunrise": "2026-11-27T07:30:00+00:00",
        "sunset": "2026-11-27T17:17:00+00:00",
    }
    mood = m.build_mood(
        datetime(2026, 11, 28, 7, 40, tzinfo=UTC), latitude=38.72, longitude=-9.14, weather=weather
    )
    assert (mood["time_of_day"], mood["time_basis"]) == ("dawn", "astronomical")


def test_build_mood_without_weather_southern() -> None:
    now = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)  # noon in Sydney, southern winter
    mood = m.build_mood(now, latitude=-33.87, longitude=151.21)
    assert (mood["condition"], mood["temperature_band"], mood["wind"]) == (None, None, None)
    assert mood["time_of_day"] == "day" and mood["season"] == "winter" and mood["hemisphere"] == "south"
    assert mood["description"] == "a winter day" and mood["location"] == "-33.870,151.210"


def test_mood_phrases_fall_back_to_the_season() -> None:
    assert (
        m.mood_phrases({"time_of_day": "night", "season": "winter", "condition": None})["atmosphere"]
        == "still, cold winter air"
    )
    phrases = m.mood_phrases({"time_of_day": "golden_hour", "season": "summer", "condition": "storm"})
    assert phrases["light"].startswith("warm golden-hour") and "lightning" in phrases["atmosphere"]
    assert m.mood_phrases(None)["light"] == "bright natural daylight"
