"""How long a server asked us to wait, from an error response's headers (or a Google RetryInfo).

Hand-written because the SDKs keep their parsers private (`_parse_retry_after_header` in the
Stainless clients of anthropic-sdk-python / openai-python): we read the same three forms, in the
same order — `retry-after-ms` (milliseconds), `retry-after` as seconds (floats allowed), then
`retry-after` as an HTTP date (RFC 9110 section 10.2.3). The Gemini API puts the delay in the error
body instead, as a `google.rpc.RetryInfo` detail with `retryDelay: "12s"`.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, Mapping


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, or None when the headers do not say (or say something unreadable)."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
    date = email.utils.parsedate_tz(headers.get("retry-after") or "")
    if date is None:
        return None
    return max(0.0, email.utils.mktime_tz(date) - time.time())


def google_retry_delay(error_body: Any) -> float | None:
    """`retryDelay` of a `type.googleapis.com/google.rpc.RetryInfo` detail ("12s", "0.5s"), if any."""
    error = error_body.get("error", error_body) if isinstance(error_body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay", ""))
            try:
                return max(0.0, float(delay.removesuffix("s")))
            except ValueError:
                return None
    return None
