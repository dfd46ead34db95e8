#!/usr/bin/python3
"""Golden next-fire times for keel's cron schedules (tests/unit/retrain_cron_test.cc).

Reference implementation: croniter (Debian's python3-croniter 1.3.5). The day
rule is crontab(5)'s (Vixie cron, cronie): day of month OR day of week when
neither field starts with '*', both otherwise. croniter's own default treats
'*/3' as restricted, so it is given day_or=False exactly when one of the two
fields starts with '*'. Times are Unix milliseconds; each case lists the next 6
fire times after `after_ms`, evaluated in UTC or at a fixed offset.

    /usr/bin/python3 tests/data/retrain/make_cron_golden.py > tests/data/retrain/cron_golden.json
"""
import json
import sys
from datetime import datetime, timedelta, timezone

import croniter

EXPRESSIONS = [
    "0 3 * * 1",          # the example: Mondays 03:00
    "*/15 * * * *",
    "5,35 8-18/2 * * *",  # list, range with step
    "0 0 1 * *",
    "30 4 1,15 * 5",      # day of month OR day of week
    "0 12 * * 7",         # 7 is Sunday
    "0 12 * * 0",
    "0 9 * * MON-FRI",
    "0 0 29 2 *",         # leap days only
    "59 23 31 12 *",      # year boundary
    "0 */6 * JAN,jul *",
    "10-20/5 1 * * *",
    "0 0 * * 1-5/2",
    "15 14 1 * *",
    "0 0 31 * *",         # only months with 31 days
    "7 7 7/10 * *",       # N/STEP in day of month
    "0 22 * * 6,0",
    "*/7 */5 */3 */2 */3",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
]

STARTS = [
    "2026-12-06T07:59:13+00:00",  # a Sunday
    "2028-02-28T23:59:59+00:00",  # before a leap day
    "2026-12-31T23:59:00+00:00",
    "2027-03-01T00:00:00+00:00",  # exactly on a minute: strictly after
]

OFFSETS = [("UTC", 0), ("+02:00", 120), ("-0530", -330)]


def main():
    cases = []
    for expr in EXPRESSIONS:
        for start in STARTS:
            for tz_text, minutes in OFFSETS:
                if tz_text != "UTC" and start != STARTS[0]:
                    continue
                tz = timezone(timedelta(minutes=minutes))
                after = datetime.fromisoformat(start).astimezone(tz)
                text = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0",
                        "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *"}.get(expr, expr).split()
                day_or = not (text[2].startswith("*") or text[4].startswith("*"))
                it = croniter.croniter(expr, after, day_or=day_or)
                fires = [int(it.get_next(datetime).timestamp() * 1000) for _ in range(6)]
                cases.append({"expression": expr, "timezone": tz_text,
                              "after_ms": int(after.timestamp() * 1000), "next_ms": fires})
    doc = {"generator": "tests/data/retrain/make_cron_golden.py",
           "croniter": getattr(croniter, "__version__", "1.3.5"), "cases": cases}
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
