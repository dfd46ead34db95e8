"""Writes tz_golden.json: UTC offsets of IANA zones at many instants, as
Python's zoneinfo (the system tz database, Debian's tzdata) gives them, for
keel::TimeZone (tests/unit/core_timezone_test.cc), with the tzdata version
it was made from (the test compares with it only on that version, and with
glibc's localtime_r on any).

Instants: every 53 days from 1971 to 2100 at 13:17:11 UTC (the far future
exercises each file's POSIX TZ rule), plus one second before and at every
offset change of 2026 and 2091 (found by an hourly scan, then bisection).

Run: /usr/bin/python3 tests/data/core/make_tz_golden.py (stdlib only)
"""
import datetime as dt
import json
import os
from zoneinfo import ZoneInfo

ZONES = ["Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
         "Pacific/Chatham", "Australia/Lord_Howe", "America/Sao_Paulo", "Europe/London",
         "America/Santiago", "Asia/Tehran"]


def offset(zone, t):
    return int(dt.datetime.fromtimestamp(t, zone).utcoffset().total_seconds())


def changes(zone, year):
    start = int(dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    end = int(dt.datetime(year + 1, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    out = []
    t = start
    while t < end:
        if offset(zone, t) != offset(zone, t + 3600):
            lo, hi = t, t + 3600
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(zone, mid) == offset(zone, t):
                    lo = mid
                else:
                    hi = mid
            out += [hi - 1, hi]
        t += 3600
    return out


def main():
    first = int(dt.datetime(1971, 1, 1, 13, 17, 11, tzinfo=dt.timezone.utc).timestamp())
    last = int(dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    golden = {}
    for name in ZONES:
        zone = ZoneInfo(name)
        instants = list(range(first, last, 53 * 86400)) + changes(zone, 2026) + changes(zone, 2091)
        golden[name] = [[t, offset(zone, t)] for t in sorted(set(instants))]
    version = ""
    with open("/usr/share/zoneinfo/tzdata.zi") as f:
        first = f.readline().split()
        if first[:2] == ["#", "version"]:
            version = first[2]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "tz_golden.json"), "w") as f:
        json.dump({"generator": "tests/data/core/make_tz_golden.py", "tzdata": version,
                   "zones": golden}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
