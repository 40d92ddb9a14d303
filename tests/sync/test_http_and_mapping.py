"""The shared HTTP client (retries, Retry-After, rate limit, error classes, redaction) and the mapping
layer (paths, transforms in both directions), without any connector."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sync.connectors.base import AuthError, PermanentError, RetryableError
from sync.http import HttpClient, TokenBucket, parse_retry_after, redact
from sync.mapping.mapper import MappingError, Rule, to_canonical, to_remote
from sync.mapping.paths import MISSING, get_path, set_path
from sync.mapping.transforms import Ref


@pytest.fixture
def client(httpserver):
    waits: list[float] = []
    http = HttpClient(base_url=httpserver.url_for(""), max_attempts=3, sleep=waits.append)
    http.waits = waits
    yield http
    http.close()


class TestHttpClient:
    def test_429_honours_retry_after_then_succeeds(self, client, httpserver):
        httpserver.expect_ordered_request("/x").respond_with_json(
            {}, status=429, headers={"Retry-After": "7"}
        )
        httpserver.expect_ordered_request("/x").respond_with_json({"ok": True})

        assert client.get_json("/x") == {"ok": True}
        assert client.waits == [7.0]

    def test_503_is_retried_with_jittered_backoff_and_gives_up_as_retryable(self, client, httpserver):
        httpserver.expect_request("/down").respond_with_data("busy", status=503)

        with pytest.raises(RetryableError, match="HTTP 503"):
            client.get_json("/down")
        assert len(client.waits) == 2 and all(0 <= w <= 30 for w in client.waits)

    def test_refused_credentials_are_an_auth_error_and_not_retried(self, client, httpserver):
        httpserver.expect_request("/me").respond_with_json({"error": "invalid_token"}, status=401)

        with pytest.raises(AuthError, match="refused credentials"):
            client.get_json("/me")
        assert client.waits == []

    def test_an_html_page_or_truncated_json_is_a_clear_permanent_error(self, client, httpserver):
        httpserver.expect_request("/html").respond_with_data(
            "<html><title>Bad gateway</title></html>", content_type="text/html"
        )
        httpserver.expect_request("/cut").respond_with_data(
            '{"items": [1, 2', content_type="application/json"
        )

        with pytest.raises(PermanentError, match=r"HTML page \(Bad gateway\)"):
            client.get_json("/html")
        with pytest.raises(PermanentError, match="expected JSON"):
            client.get_json("/cut")

    def test_a_vendor_error_body_is_quoted_in_the_error(self, client, httpserver):
        httpserver.expect_request("/bad").respond_with_json({"message": "Field INN is invalid"}, status=400)

        with pytest.raises(PermanentError, match="Field INN is invalid"):
            client.post_json("/bad", {"x": 1})

    def test_an_unreachable_server_is_retryable(self):
        http = HttpClient(base_url="http://127.0.0.1:9", max_attempts=2, sleep=lambda s: None, timeout=2)
        with pytest.raises(RetryableError, match="cannot reach the server"):
            http.get_json("/")

    def test_the_token_bucket_spaces_requests_at_the_rate(self):
        now = [0.0]
        bucket = TokenBucket(2.0, burst=2, clock=lambda: now[0])
        assert [bucket.wait_time() for _ in range(2)] == [0.0, 0.0]
        assert bucket.wait_time() == pytest.approx(0.5)
        now[0] += 1.5
        assert bucket.wait_time() == 0.0

    def test_retry_after_in_seconds_milliseconds_or_a_date(self):
        assert parse_retry_after("3") == 3.0
        assert parse_retry_after("1500", unit=0.001) == 1.5
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
        assert parse_retry_after("soon") is None

    def test_secrets_are_redacted(self):
        text = "POST /token?client_secret=abc123&refresh_token=r-9 password: hunter2"
        assert "abc123" not in redact(text) and "r-9" not in redact(text) and "hunter2" not in redact(text)


class TestPaths:
    def test_dotted_indexed_and_selected_paths(self):
        data = {"a": {"b": [{"k": "INN", "v": "1"}, {"k": "KPP", "v": "2"}]}}
        assert get_path(data, "a.b.1.v") == "2"
        assert get_path(data, "a.b[k=KPP].v") == "2"
        assert get_path(data, "a.b[k=OGRN].v") is MISSING
        out: dict = {}
        set_path(out, "a.b[k=INN].v", "9")
        set_path(out, "x.0.y", 1)
        assert out == {"a": {"b": [{"k": "INN", "v": "9"}]}, "x": [{"y": 1}]}


def rules(*specs):
    return [Rule("clients", *s) if isinstance(s, tuple) else s for s in specs]


class TestTransforms:
    def test_full_name_splits_in_and_joins_out(self):
        r = [Rule("contacts", "fio", f, "both", "full_name", {"part": p}) for f, p in
             (("last_name", "last"), ("first_name", "first"), ("middle_name", "middle"))]  # fmt: skip
        canonical = to_canonical({"fio": "Иванов Иван Иванович"}, r)
        assert canonical == {"last_name": "Иванов", "first_name": "Иван", "middle_name": "Иванович"}
        assert to_remote(canonical, r) == {"fio": "Иванов Иван Иванович"}

    def test_phone_datetime_date_decimal_enum_boolean_constant_template(self):
        r = [
            Rule("clients", "tel", "phone", transform="phone", params={"region": "RU"}),
            Rule("payments", "ts", "received_at", transform="datetime", params={"format": "%d.%m.%Y %H:%M", "tz": "Europe/Moscow"}),
            Rule("deals", "due", "expected_close_date", transform="date", params={"format": "%d.%m.%Y"}),
            Rule("deals", "sum", "amount", transform="decimal", params={"divide": 100}),
            Rule("deals", "st", "status", transform="enum", params={"map": {"142": "won", "143": "lost"}, "default": "open"}),
            Rule("clients", "active", "archived", transform="boolean", params={"negate": True}),
            Rule("clients", "", "country", transform="constant", params={"value": "RU"}),
            Rule("contacts", "", "first_name", "in", "template", {"template": "{name} {surname}"}),
        ]  # fmt: skip
        data = {"tel": "8 (916) 123-45-67", "ts": "01.03.2026 12:00", "due": "31.12.2026", "sum": 1234567,
                "st": 142, "active": False, "name": "Анна", "surname": "Ли"}  # fmt: skip
        canonical = to_canonical(data, r)
        assert canonical["phone"] == "+79161234567"
        assert canonical["received_at"] == dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
        assert canonical["expected_close_date"] == dt.date(2026, 12, 31)
        assert canonical["amount"] == Decimal("12345.67")
        assert canonical["status"] == "won" and canonical["archived"] is True
        assert canonical["country"] == "RU" and canonical["first_name"] == "Анна Ли"
        out = to_remote(canonical, r)
        assert out["sum"] == 1234567 and out["st"] == "142" and out["active"] is False
        assert out["due"] == "31.12.2026" and out["ts"] == "01.03.2026 12:00"

    def test_lookup_gives_a_ref_in_and_the_external_id_out(self):
        r = [
            Rule(
                "deals", "company_id", "client", transform="lookup", params={"entity": "clients", "as": "int"}
            )
        ]
        assert to_canonical({"company_id": 77}, r) == {"client": Ref("clients", "77")}
        assert to_remote({"client": 5}, r, resolve=lambda entity, oid: "77") == {"company_id": 77}

    def test_every_bad_field_is_reported_at_once(self):
        r = [
            Rule("clients", "tel", "phone", transform="phone"),
            Rule("clients", "when", "notes", transform="date"),
            Rule("deals", "st", "status", transform="enum", params={"map": {"1": "open"}}),
        ]
        with pytest.raises(MappingError) as caught:
            to_canonical({"tel": "call me", "when": "yesterday", "st": "9"}, r)
        assert set(caught.value.reasons) == {"phone", "notes", "status"}
        assert "unknown value '9'" in caught.value.reasons["status"]

    def test_a_field_missing_from_a_partial_record_is_left_alone(self):
        r = [Rule("clients", "name", "name"), Rule("clients", "mail", "email")]
        assert to_canonical({"name": "A"}, r) == {"name": "A"}
