"""Go durations as muster's YAML spells them: time.ParseDuration's grammar, and the shortest spelling back."""

import re
from datetime import timedelta
from decimal import Decimal

_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9}
_DURATION_UNITS["h"] = 60 * _DURATION_UNITS["m"]
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> timedelta:
    """A Go time.ParseDuration string ("720h", "1h30m", "1.5h"); days are not a unit, as in Go."""
    sign = text[:1] if text[:1] in ("+", "-") else ""
    body, negative = text[len(sign) :], sign == "-"
    total, pos = Decimal(0), 0
    while body != "0" and pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            break
        total += Decimal(match[1]) * _DURATION_UNITS[match[2]]
        pos = match.end()
    if not body or (body != "0" and pos != len(body)):
        raise ValueError(f"must be a Go duration such as 720h or 1h30m (units ns, us, ms, s, m, h), got {text!r}")
    try:
        return timedelta(microseconds=int(-total if negative else total) // 1000)
    except OverflowError:
        raise ValueError(f"is too large, got {text!r}") from None


def format_go_duration(value: timedelta) -> str:
    """The shortest Go-style spelling of a whole-second duration, e.g. 720h or 1h30m."""
    minutes, seconds = divmod(int(value.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    return text or "0s"
