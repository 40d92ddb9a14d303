"""The one HTTP client every connector uses.

Timeouts, retries with exponential backoff and full jitter, `Retry-After` honoured on 429/503 (seconds
or an HTTP date; vendors with their own header pass `retry_after_header`), a per-connection rate limit
(token bucket shared by the threads of one process), and logging with secrets redacted. Replies are
classified: network errors, 429 and 5xx are `RetryableError` once attempts run out; 401/403 are
`AuthError`; other 4xx are `PermanentError` carrying the vendor's error body.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from sync.connectors.base import AuthError, ConnectionConfig, PermanentError, RetryableError

logger = logging.getLogger("sync.http")

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SECRET_PATTERN = re.compile(
    r"(?i)((?:access_token|refresh_token|client_secret|password|api_token|token|auth)[\"'=:\s]+)[^&\"'\s,}]+"
)
_BUCKETS: dict[str, TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


# a Bitrix24 incoming-webhook URL carries its secret in the path: /rest/{user_id}/{code}/
WEBHOOK_PATH_SECRET = re.compile(r"(/rest/\d+/)[^/?#\s]+")


def redact(text: str) -> str:
    """Hide credentials in anything we log or store as an error message."""
    return WEBHOOK_PATH_SECRET.sub(r"\1***", SECRET_PATTERN.sub(r"\1***", text))


class TokenBucket:
    """At most `rate` requests per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.lock = threading.Lock()

    def wait_time(self) -> float:
        """Take one token; return how long the caller must sleep first."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            self.tokens -= 1
            return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def bucket_for(key: str, rate: float | None) -> TokenBucket | None:
    if not rate:
        return None
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None or bucket.rate != rate:
            bucket = _BUCKETS[key] = TokenBucket(rate)
        return bucket


def parse_retry_after(value: str | None, *, unit: float = 1.0) -> float | None:
    """`Retry-After` as seconds: a number (times `unit`, e.g. 0.001 for milliseconds) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value) * unit)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_excerpt(response: httpx.Response, limit: int = 300) -> str:
    """A short, readable excerpt of an error body (JSON message when there is one, not an HTML page)."""
    ctype = response.headers.get("content-type", "")
    text = response.text[:4000]
    if "json" in ctype:
        try:
            body = response.json()
        except ValueError:
            return f"malformed JSON: {text[:limit]!r}"
        return redact(json.dumps(body, ensure_ascii=False)[:limit])
    if "html" in ctype or text.lstrip().lower().startswith(("<!doctype", "<html")):
        title = re.search(r"(?is)<title>(.*?)</title>", text)
        return "an HTML page" + (f" ({title.group(1).strip()[:100]})" if title else "") + " instead of data"
    return redact(text[:limit])


class HttpClient:
    """A thin, retrying wrapper around one `httpx.Client`."""

    def __init__(
        self,
        *,
        base_url: str = "",
        name: str = "",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        rate_limit: float | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        retry_after_header: str = "Retry-After",
        retry_after_unit: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        self.name = name or base_url
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_header = retry_after_header
        self.retry_after_unit = retry_after_unit
        self.sleep = sleep
        self.bucket = bucket_for(self.name, rate_limit)
        self.client = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
            transport=transport,
        )

    @classmethod
    def for_connection(cls, config: ConnectionConfig, **kwargs: Any) -> HttpClient:
        kwargs.setdefault("rate_limit", config.rate_limit_per_second)
        return cls(
            base_url=config.base_url,
            name=f"connection:{config.name}",
            timeout=config.timeout_seconds,
            max_attempts=config.max_attempts,
            **kwargs,
        )

    def close(self) -> None:
        self.client.close()

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random delay up to base * 2**attempt, capped."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * (2**attempt)))

    def request(
        self, method: str, url: str, *, expect: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        """Send with retries; return a 2xx (or an `expect`ed) response, raise a `ConnectorError` otherwise."""
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            if self.bucket is not None:
                delay = self.bucket.wait_time()
                if delay:
                    self.sleep(delay)
            started = time.monotonic()
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx.TimeoutException as exc:
                last = RetryableError(f"{method} {redact(str(url))}: timed out ({type(exc).__name__})")
            except httpx.TransportError as exc:
                last = RetryableError(f"{method} {redact(str(url))}: cannot reach the server ({exc})")
            else:
                logger.info(
                    "http %s %s -> %s in %.0f ms",
                    method,
                    redact(str(response.request.url)),
                    response.status_code,
                    (time.monotonic() - started) * 1000,
                    extra={"connection": self.name},
                )
                if response.is_success or response.status_code in expect:
                    return response
                status = response.status_code
                excerpt = error_excerpt(response)
                if status in (401, 403):
                    raise AuthError(
                        f"{method} {url}: refused credentials ({status}): {excerpt}", status=status
                    )
                if status not in RETRY_STATUSES:
                    raise PermanentError(f"{method} {url}: HTTP {status}: {excerpt}", status=status)
                retry_after = parse_retry_after(
                    response.headers.get(self.retry_after_header), unit=self.retry_after_unit
                )
                last = RetryableError(
                    f"{method} {url}: HTTP {status}: {excerpt}", status=status, retry_after=retry_after
                )
                if retry_after is not None and attempt + 1 < self.max_attempts:
                    if retry_after > self.backoff_cap * 4:
                        raise last  # the vendor asks for a long pause: give up now, the next run resumes
                    self.sleep(retry_after)
                    continue
            if attempt + 1 < self.max_attempts:
                self.sleep(self.backoff(attempt))
        assert last is not None
        raise last

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self.json_of(self.request("GET", url, **kwargs))

    def post_json(self, url: str, body: Any = None, **kwargs: Any) -> Any:
        return self.json_of(self.request("POST", url, json=body, **kwargs))

    @staticmethod
    def json_of(response: httpx.Response) -> Any:
        """The JSON body, or a clear `PermanentError` for an HTML page, a truncated or empty body."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise PermanentError(
                f"{response.request.method} {response.request.url}: expected JSON, got {error_excerpt(response)}",
                status=response.status_code,
            ) from None
