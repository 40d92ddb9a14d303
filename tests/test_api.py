"""The REST API: auth and scopes, pagination, updated_since, search, idempotency, the error shape."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from hub.api_auth import apikey_create, apikey_revoke
from hub.models import ApiKey, Client, Deal, DomainEvent
from invoicing.models import Invoice
from tests.factories import ChannelFactory, ClientFactory, ProductFactory, UserFactory, inn_with_checksum

pytestmark = pytest.mark.django_db


def assert_error_shape(response, status, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


# --- authentication and scopes ----------------------------------------------------------------


def test_list_without_key_is_refused_with_401(anon_api):
    response = anon_api.get("/api/v1/clients/")
    assert_error_shape(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_and_malformed_keys_are_refused(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer hub_deadbeef_nope")
    assert_error_shape(anon_api.get("/api/v1/clients/"), 401)
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer not-a-hub-key")
    assert_error_shape(anon_api.get("/api/v1/clients/"), 401)


def test_revoked_key_is_refused(anon_api):
    key, raw = apikey_create(name="old", scope="write")
    apikey_revoke(key=key)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    error = assert_error_shape(anon_api.get("/api/v1/clients/"), 401)
    assert "revoked" in error["message"]


def test_key_is_stored_only_as_a_digest():
    key, raw = apikey_create(name="erp", scope="read")
    stored = ApiKey.objects.get(pk=key.pk)
    assert raw not in (stored.digest, stored.prefix, stored.name)
    assert len(stored.digest) == 64


def test_read_key_reads_but_cannot_write(read_api):
    ClientFactory()
    assert read_api.get("/api/v1/clients/").status_code == 200
    error = assert_error_shape(read_api.post("/api/v1/clients/", {"name": "X"}, format="json"), 403)
    assert "read-only" in error["message"]
    assert Client.objects.count() == 1


def test_session_user_needs_model_permissions(client):
    user = UserFactory(username="viewer")
    client.force_login(user)
    assert client.get("/api/v1/clients/").status_code == 403
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="view_client"))
    assert client.get("/api/v1/clients/").status_code == 200


# --- clients ---------------------------------------------------------------------------------


def test_create_client_normalises_requisites_and_records_an_event(api, company):
    # given a company client with a valid INN and a phone in a local format
    payload = {
        "name": "ООО «Вектор»",
        "inn": "7707083893",
        "kpp": "773601001",
        "phone": "8 (916) 123-45-67",
        "email": "Info@Vector.RU",
    }
    # when it is posted
    response = api.post("/api/v1/clients/", payload, format="json")
    # then it is stored in canonical form and one event describes it
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["phone"] == "+79161234567"
    assert body["email"] == "Info@vector.ru"
    event = DomainEvent.objects.get(type="client.created")
    assert event.aggregate_id == str(body["id"])
    assert event.origin == "api"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("inn", "7707083894"),
        ("inn", "12345"),
        ("kpp", "77360100"),
        ("phone", "12"),
        ("email", "not-an-email"),
    ],
)
def test_invalid_requisites_are_refused_naming_the_field(api, field, value):
    response = api.post("/api/v1/clients/", {"name": "Bad", field: value}, format="json")
    error = assert_error_shape(response, 400, "validation_error")
    assert field in error["fields"]
    assert Client.objects.count() == 0
    assert DomainEvent.objects.count() == 0


def test_duplicate_inn_is_a_409(api):
    ClientFactory(inn="7707083893", kpp="773601001")
    response = api.post(
        "/api/v1/clients/", {"name": "Copy", "inn": "7707083893", "kpp": "773601001"}, format="json"
    )
    assert_error_shape(response, 409, "duplicate")


def test_nested_fields_and_cursor_pagination(api):
    channel = ChannelFactory(name="Referral", code="referral")
    manager = UserFactory(username="anna", first_name="Anna", last_name="Smith")
    ClientFactory.create_batch(120, channel=channel, manager=manager)
    seen = []
    url = "/api/v1/clients/"
    pages = 0
    while url:
        body = api.get(url).json()
        pages += 1
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120
    assert seen == sorted(seen, reverse=True)  # newest first by default
    first = api.get("/api/v1/clients/?page_size=1").json()["results"][0]
    assert first["channel"] == {"id": channel.pk, "code": "referral", "name": "Referral"}
    assert first["manager"] == {"id": manager.pk, "username": "anna", "full_name": "Anna Smith"}


def test_list_query_count_does_not_grow_with_the_page(api, django_assert_max_num_queries):
    ClientFactory.create_batch(50, channel=ChannelFactory(), manager=UserFactory())
    with django_assert_max_num_queries(3):  # key lookup, page, (last_used_at once a minute)
        assert len(api.get("/api/v1/clients/").json()["results"]) == 50


def test_updated_since_and_ordering(api):
    old = ClientFactory(name="Old")
    Client.objects.filter(pk=old.pk).update(updated_at=timezone.now() - dt.timedelta(days=10))
    fresh = ClientFactory(name="Fresh")
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    rows = api.get("/api/v1/clients/", {"updated_since": since}).json()["results"]
    assert [r["id"] for r in rows] == [fresh.pk]
    rows = api.get("/api/v1/clients/", {"ordering": "updated_at"}).json()["results"]
    assert [r["id"] for r in rows] == [old.pk, fresh.pk]
    assert_error_shape(api.get("/api/v1/clients/", {"updated_since": "yesterday"}), 400)


def test_search_by_name_inn_email_and_phone(api):
    target = ClientFactory(
        name="Альфа Трейд", inn=inn_with_checksum("771234567"), email="buh@alfa.ru", phone="+79031112233"
    )
    ClientFactory.create_batch(5)
    for term in ["Альфа", target.inn, "buh@alfa", "9031112233"]:
        ids = [r["id"] for r in api.get("/api/v1/clients/", {"search": term}).json()["results"]]
        assert ids == [target.pk], term


def test_patch_client_and_archive(api):
    client = ClientFactory()
    response = api.patch(f"/api/v1/clients/{client.pk}/", {"name": "Renamed"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "Renamed"
    event = DomainEvent.objects.get(type="client.updated")
    assert event.payload["changes"]["name"][1] == "Renamed"
    assert api.delete(f"/api/v1/clients/{client.pk}/").status_code == 204
    client.refresh_from_db()
    assert client.archived_at is not None  # archived, never deleted
    assert api.get("/api/v1/clients/", {"archived": "false"}).json()["results"] == []


def test_unknown_ids_and_bad_cursors_are_404_not_500(api):
    assert_error_shape(api.get("/api/v1/clients/999999/"), 404)
    assert_error_shape(api.get("/api/v1/clients/abc/"), 404)
    assert_error_shape(api.get("/api/v1/clients/", {"cursor": "garbage"}), 404)
    import base64

    for position in ("abc", "\x00", "9" * 40):
        cursor = base64.b64encode(f"p={position}".encode()).decode()
        assert api.get("/api/v1/clients/", {"cursor": cursor}).status_code in (200, 404)


# --- idempotency -----------------------------------------------------------------------------


def test_idempotency_key_replays_the_first_response(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "create-acme-1"}
    first = api.post("/api/v1/clients/", {"name": "Acme"}, format="json", **headers)
    second = api.post("/api/v1/clients/", {"name": "Acme"}, format="json", **headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Client.objects.count() == 1


def test_idempotency_key_with_another_body_is_422(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-2"}
    api.post("/api/v1/clients/", {"name": "Acme"}, format="json", **headers)
    response = api.post("/api/v1/clients/", {"name": "Other"}, format="json", **headers)
    assert_error_shape(response, 422, "idempotency_key_reused")
    assert Client.objects.count() == 1


def test_idempotency_keys_are_per_caller(api, write_key):
    _, other_raw = apikey_create(name="other", scope="write")
    from rest_framework.test import APIClient

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_raw}")
    api.post("/api/v1/clients/", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert (
        other.post("/api/v1/clients/", {"name": "B"}, format="json", HTTP_IDEMPOTENCY_KEY="same").status_code
        == 201
    )
    assert Client.objects.count() == 2


def test_a_refused_request_is_replayed_as_refused(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "bad-1"}
    first = api.post("/api/v1/clients/", {"name": "X", "inn": "1"}, format="json", **headers)
    second = api.post("/api/v1/clients/", {"name": "X", "inn": "1"}, format="json", **headers)
    assert first.status_code == second.status_code == 400


# --- deals, invoices, payments ----------------------------------------------------------------


def test_create_deal_with_nested_lines_computes_totals(api, company, pipeline):
    client = ClientFactory()
    product = ProductFactory(price=Decimal("1000.00"), unit_cost=Decimal("600.00"), vat_rate=Decimal("22"))
    payload = {
        "title": "Поставка",
        "client": client.pk,
        "lines": [
            {"product": product.pk, "quantity": "3"},
            {
                "description": "Монтаж",
                "quantity": "1.5",
                "unit_price": "333.33",
                "discount_pct": "10",
                "vat_rate": "22",
            },
        ],
    }
    response = api.post("/api/v1/deals/", payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    # line 1: 3 × 1000 = 3000.00 net, VAT 660.00; line 2: 1.5 × 333.33 = 499.995 → 500.00, −10 % = 450.00,
    # VAT 99.00. Net 3450.00, VAT 759.00, total 4209.00, cost 3 × 600 = 1800.00
    assert (body["amount_net"], body["vat_amount"], body["amount_total"], body["cost_total"]) == (
        "3450.00",
        "759.00",
        "4209.00",
        "1800.00",
    )
    assert [ln["amount_total"] for ln in body["lines"]] == ["3660.00", "549.00"]
    assert body["stage_code"] == "new" and body["status"] == "open"
    assert DomainEvent.objects.filter(type="deal.created", aggregate_id=str(body["id"])).exists()


def test_deal_with_a_bad_line_names_the_line(api, company, pipeline):
    client = ClientFactory()
    response = api.post(
        "/api/v1/deals/",
        {
            "title": "T",
            "client": client.pk,
            "lines": [{"description": "x", "quantity": "1", "unit_price": "-5"}],
        },
        format="json",
    )
    error = assert_error_shape(response, 400)
    assert any(k.startswith("lines") for k in error["fields"])
    assert Deal.objects.count() == 0


def test_moving_a_deal_to_a_won_stage_sets_won_at_and_emits_events(api, company, pipeline):
    deal = api.post("/api/v1/deals/", {"title": "T", "client": ClientFactory().pk}, format="json").json()
    won = pipeline.stages.get(code="won")
    response = api.patch(f"/api/v1/deals/{deal['id']}/", {"stage": won.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "won" and response.json()["won_at"]
    types = list(DomainEvent.objects.filter(aggregate_id=str(deal["id"])).values_list("type", flat=True))
    assert types == ["deal.created", "deal.updated", "deal.stage_changed", "deal.won"]


def test_stale_deal_update_is_refused(api, company, pipeline):
    deal = api.post("/api/v1/deals/", {"title": "T", "client": ClientFactory().pk}, format="json").json()
    stale = "2000-01-01T00:00:00Z"
    response = api.patch(
        f"/api/v1/deals/{deal['id']}/", {"title": "New", "expected_updated_at": stale}, format="json"
    )
    assert_error_shape(response, 409, "stale")
    ok = api.patch(
        f"/api/v1/deals/{deal['id']}/",
        {"title": "New", "expected_updated_at": deal["updated_at"]},
        format="json",
    )
    assert ok.status_code == 200


def test_invoice_draft_issue_and_payment(api, company):
    client = ClientFactory()
    draft = api.post(
        "/api/v1/invoices/",
        {
            "client": client.pk,
            "lines": [
                {"description": "Консультация", "quantity": "2", "unit_price": "5000", "vat_rate": "22"}
            ],
        },
        format="json",
    )
    assert draft.status_code == 201, draft.content
    body = draft.json()
    assert body["status"] == "draft" and body["number"] is None
    assert body["amount_total"] == "12200.00"
    issued = api.post(f"/api/v1/invoices/{body['id']}/issue/").json()
    assert issued["status"] == "issued" and issued["number"].endswith("-00001")
    assert_error_shape(api.post(f"/api/v1/invoices/{body['id']}/issue/"), 409)
    payment = api.post(
        "/api/v1/payments/",
        {
            "amount": "5000.00",
            "received_at": timezone.now().isoformat(),
            "external_id": "bank-42",
            "allocations": [{"invoice": body["id"]}],
        },
        format="json",
    )
    assert payment.status_code == 201, payment.content
    assert payment.json()["status"] == "allocated"
    invoice = Invoice.objects.get(pk=body["id"])
    assert invoice.status == "partially_paid" and invoice.amount_paid == Decimal("5000.00")
    duplicate = api.post(
        "/api/v1/payments/",
        {"amount": "5000.00", "received_at": timezone.now().isoformat(), "external_id": "bank-42"},
        format="json",
    )
    assert_error_shape(duplicate, 409, "duplicate")


def test_pipelines_list_nested_stages(api, pipeline):
    body = api.get("/api/v1/pipelines/").json()
    assert [s["code"] for s in body["results"][0]["stages"]] == [
        "new",
        "proposal",
        "negotiation",
        "won",
        "lost",
    ]


# --- schema and health -------------------------------------------------------------------------


def test_schema_is_openapi_3_and_docs_render(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    body = schema.json()
    assert body["openapi"].startswith("3.")
    assert "/api/v1/clients/" in body["paths"]
    assert "ApiKey" in body["components"]["securitySchemes"]
    assert client.get("/api/docs/").status_code == 200


def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    body = response.json()
    assert body["checks"]["database"]["ok"] is True
    assert "broker" in body["checks"]
    assert response.status_code == (200 if body["checks"]["broker"]["ok"] else 503)


def test_compiled_output_matches_drf_rendering(company, pipeline):
    """The fast output path renders exactly what DRF's generic ModelSerializer would."""
    from rest_framework import serializers as drf

    from hub.serializers import ClientOutput, DealOutput
    from hub.services import deal_create

    client = ClientFactory(channel=ChannelFactory(), manager=UserFactory(first_name="A", last_name="B"))
    deal = deal_create(title="T", client=client, lines=[{"product": ProductFactory().pk, "quantity": "2"}])
    deal = Deal.objects.prefetch_related("lines").select_related("stage").get(pk=deal.pk)
    for serializer, obj in ((ClientOutput, client), (DealOutput, deal)):
        fast = serializer(obj).data
        slow = drf.ModelSerializer.to_representation(serializer(obj), obj)
        assert dict(fast) == dict(slow)


def test_ancient_updated_since_is_a_400_not_a_database_error(api):
    error = assert_error_shape(
        api.get("/api/v1/payments/", {"updated_since": "0248-09-05T10:23:40.823Z"}), 400
    )
    assert "updated_at" in error["fields"]


def test_front_door_and_offline_docs(client):
    assert client.get("/")["Location"] == "/app/"
    docs = client.get("/api/docs/").content.decode()
    assert "cdn.jsdelivr" not in docs and "swagger-ui" in docs


def test_old_idempotency_records_are_purged(api, settings):
    from hub.models import IdempotencyRecord
    from hub.tasks import purge_idempotency_records

    api.post("/api/v1/clients/", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyRecord.objects.update(
        created_at=timezone.now() - dt.timedelta(hours=settings.HUB_IDEMPOTENCY_TTL_HOURS + 1)
    )
    assert purge_idempotency_records() == 1


def test_client_list_rows_match_the_client_serializer(api):
    """The list endpoint renders values() rows by hand for speed; they must equal ClientOutput's JSON."""
    from hub.serializers import ClientOutput

    ClientFactory(channel=ChannelFactory(), manager=UserFactory(first_name="Анна", last_name="Петрова"),
                  notes="n", address="a")  # fmt: skip
    archived = ClientFactory()
    from hub.services import client_archive

    client_archive(client=archived)
    ClientFactory(kind="person", inn="", email="")
    listed = api.get("/api/v1/clients/").json()["results"]
    assert len(listed) == 3
    for row in listed:
        client = Client.objects.select_related("manager", "channel").get(pk=row["id"])
        expected = api.get(f"/api/v1/clients/{client.pk}/").json()
        assert row == expected == json_roundtrip(ClientOutput(client).data)


def json_roundtrip(data):
    import json

    from rest_framework.renderers import JSONRenderer

    return json.loads(JSONRenderer().render(data))


def test_revocation_applies_at_once_here_and_within_seconds_elsewhere(anon_api, monkeypatch):
    from hub import api_auth

    key, raw = apikey_create(name="cached", scope="read")
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/api/v1/clients/").status_code == 200  # now cached in this process
    # revoked by another process (the row changes, this process's cache does not know)
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert anon_api.get("/api/v1/clients/").status_code == 200  # within the cache window
    monkeypatch.setattr(api_auth, "KEY_CACHE_SECONDS", 0.0)
    api_auth._KEY_CACHE.clear()
    assert anon_api.get("/api/v1/clients/").status_code == 401
    # revoked in this process: refused on the next request, cache or not
    key2, raw2 = apikey_create(name="cached2", scope="read")
    monkeypatch.setattr(api_auth, "KEY_CACHE_SECONDS", 60.0)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw2}")
    assert anon_api.get("/api/v1/clients/").status_code == 200
    apikey_revoke(key=key2)
    assert anon_api.get("/api/v1/clients/").status_code == 401


def test_last_used_is_written_once_a_minute_not_per_request(api, django_assert_max_num_queries):
    api.get("/api/v1/clients/")
    with django_assert_max_num_queries(1):  # the page only: key cached, last_used_at fresh
        api.get("/api/v1/clients/")


def test_fast_renderer_writes_drf_bytes():
    """orjson writes the API's JSON; the bytes must be exactly what DRF's renderer would write."""
    import datetime as dt_
    import uuid
    from decimal import Decimal as Dec

    from django.utils.translation import gettext_lazy
    from rest_framework.renderers import JSONRenderer

    from hub.renderers import FastJSONRenderer

    samples = [
        {"a": 1, "b": [1.5, None, True], "c": "Счёт № 1 «Ромашка»", "d": {"n": {"m": []}}},
        {"when": dt_.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt_.UTC), "day": dt_.date(2026, 1, 2)},
        {"money": Dec("1220.50"), "id": uuid.UUID(int=7), "lazy": gettext_lazy("client")},
        {"line": "a\u2028b\u2029c", "big": 2**70, 3: "int key"},
        [],
        "plain",
    ]
    for data in samples:
        assert FastJSONRenderer().render(data) == JSONRenderer().render(data), data
    assert FastJSONRenderer().render(None) == b""
