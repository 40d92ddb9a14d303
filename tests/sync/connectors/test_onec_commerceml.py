"""The CommerceML exchange endpoint driven like 1C drives it, the pure builder/parser, and the
registered `onec_commerceml` connector."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.urls import include, path

from invoicing.models import Invoice, Payment
from invoicing.services import invoice_create_draft, invoice_issue, invoice_void
from sync import commerceml
from sync.commerceml_exchange import credentials_for, documents_apply
from sync.commerceml_views import COOKIE_NAME
from sync.connectors import connector_class
from sync.connectors.base import AuthError, ConnectionConfig, MemoryCredentialStore, PermanentError
from sync.mapping.mapper import Rule, to_canonical
from tests.factories import ClientFactory

urlpatterns = [path("sync/1c_exchange/<str:name>/", include("sync.commerceml_urls"))]
pytestmark = pytest.mark.urls(__name__)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "onec_commerceml"
URL = "/sync/1c_exchange/buh/"
USER, PASSWORD = "обмен", "s3cret"
LINE = {"description": "Консультация", "quantity": D("2"), "unit_price": D("1000.00"), "vat_rate": D("22")}


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def exchange_settings(settings, tmp_path, db):
    settings.VAR_DIR = tmp_path
    settings.HUB_1C_EXCHANGE = {"buh": {"username": USER, "password": PASSWORD}}
    return settings


@pytest.fixture
def buyer(db):
    return ClientFactory(
        name="ООО «Покупатель»", legal_name="Общество «Покупатель»", inn="7736050003", kpp="773601001"
    )


@pytest.fixture
def issued(company, buyer):
    """Two issued invoices and a draft (drafts never go to 1C)."""
    first = invoice_issue(invoice=invoice_create_draft(client=buyer, lines=[LINE], purpose="Оплата по счёту"))
    second = invoice_issue(invoice=invoice_create_draft(client=buyer, lines=[LINE]))
    invoice_create_draft(client=buyer, lines=[LINE])
    return first, second


def get(client, mode, kind="sale", **params):
    return client.get(URL, {"type": kind, "mode": mode, **params})


def text(response, encoding="windows-1251"):
    return response.content.decode(encoding)


def logged_in(client) -> None:
    response = client.get(URL, {"type": "sale", "mode": "checkauth"}, HTTP_AUTHORIZATION=basic())
    status, name, value = text(response).split("\n")
    assert (status, name) == ("success", COOKIE_NAME)
    client.cookies[COOKIE_NAME] = value


def upload(client, filename, body, mode="file"):
    return client.post(
        f"{URL}?type=sale&mode={mode}&filename={filename}", data=body, content_type="application/octet-stream"
    )


def orders_from_1c(paid: Invoice, cancelled: Invoice) -> bytes:
    raw = (FIXTURES / "orders_from_1c.xml").read_bytes().decode("cp1251")
    for key, value in {
        "__PAID_ID__": paid.pk,
        "__PAID_NUMBER__": paid.number,
        "__CANCELLED_ID__": cancelled.pk,
        "__CANCELLED_NUMBER__": cancelled.number,
    }.items():
        raw = raw.replace(key, str(value))
    return raw.encode("cp1251")


# ---- the 1C session -----------------------------------------------------------------------------


def test_a_full_order_exchange_checkauth_init_query_success(client, exchange_settings, issued):
    first, second = issued

    # when 1C authenticates, starts the exchange and asks for orders
    logged_in(client)
    init = get(client, "init")
    query = get(client, "query")

    # then it gets the protocol replies and both issued invoices as orders, in windows-1251
    assert text(init) == "zip=no\nfile_limit=2097152"
    assert query["Content-Type"] == "application/xml; charset=windows-1251"
    assert query.content.startswith(b'<?xml version="1.0" encoding="windows-1251"?>')
    documents = commerceml.parse_documents(query.content)
    assert [d.number for d in documents] == [first.number, second.number]
    order = documents[0]
    assert order.id == str(first.pk)
    assert order.operation == "Заказ товара"
    assert order.total == first.amount_total == D("2440.00")
    assert order.parties[0]["ИНН"] == "7736050003" and order.parties[0]["КПП"] == "773601001"
    assert order.parties[0]["Наименование"] == "ООО «Покупатель»"
    assert order.items[0]["Наименование"] == "Консультация"
    assert order.items[0]["Количество"] == "2" and order.items[0]["Сумма"] == "2440.00"
    assert order.requisites["Статус заказа"] == "Выставлен"

    # when 1C confirms, the next query only carries what changed since
    assert text(get(client, "success")) == "success"
    assert commerceml.parse_documents(get(client, "query").content) == []
    invoice_void(invoice=second, reason="ошибка")
    changed = commerceml.parse_documents(get(client, "query").content)
    assert [(d.number, d.requisites["Отменен"], d.requisites["Статус заказа"]) for d in changed] == [
        (second.number, "true", "Отменен")
    ]


def test_an_export_1c_did_not_confirm_is_sent_again(client, exchange_settings, issued):
    logged_in(client)
    assert len(commerceml.parse_documents(get(client, "query").content)) == 2
    # no mode=success: 1C failed to load it
    assert len(commerceml.parse_documents(get(client, "query").content)) == 2


def test_utf8_exchange_when_configured(client, exchange_settings, issued):
    exchange_settings.HUB_1C_EXCHANGE = {"buh": {"username": USER, "password": PASSWORD, "encoding": "utf-8"}}
    logged_in_utf8 = client.get(URL, {"type": "sale", "mode": "checkauth"}, HTTP_AUTHORIZATION=basic())
    client.cookies[COOKIE_NAME] = text(logged_in_utf8, "utf-8").split("\n")[2]

    query = get(client, "query")

    assert query["Content-Type"] == "application/xml; charset=utf-8"
    assert "ООО «Покупатель»".encode() in query.content


def test_1c_hands_back_payments_and_cancellations_file_then_import(client, exchange_settings, issued):
    paid, cancelled = issued
    logged_in(client)
    get(client, "init")
    body = orders_from_1c(paid, cancelled)

    # when 1C uploads its orders file in two chunks and then asks to import it
    first_chunk = upload(client, "orders-1.xml", body[:300])
    assert text(first_chunk) == "success"
    assert Payment.objects.count() == 0  # half a file is not applied
    assert text(upload(client, "orders-1.xml", body[300:])) == "success"
    assert text(upload(client, "orders-1.xml", b"", mode="import")) == "success"

    # then the paid order got one payment of its amount due, allocated; the cancelled one is void
    paid.refresh_from_db()
    cancelled.refresh_from_db()
    payment = Payment.objects.get()
    assert (payment.amount, payment.source, payment.external_id) == (
        D("2440.00"),
        "sync",
        f"1c:buh:{paid.pk}:512",
    )
    assert payment.received_at == dt.datetime(2026, 1, 17, 6, 15, tzinfo=dt.UTC)
    assert paid.status == "paid" and paid.amount_paid == D("2440.00")
    assert cancelled.status == "void" and cancelled.void_reason == "Отменён в 1С"

    # and a repeated exchange with the same file changes nothing
    get(client, "init")
    assert text(upload(client, "orders-1.xml", body)) == "success"
    assert text(upload(client, "orders-1.xml", b"", mode="import")) == "success"
    assert Payment.objects.count() == 1


def test_a_refused_or_unreadable_document_is_reported_and_the_rest_applied(exchange_settings, issued):
    paid, other = issued
    invoice_void(invoice=other, reason="дубль")
    bad_date = commerceml.ImportedDocument(
        id=str(paid.pk),
        number=paid.number,
        operation="Заказ товара",
        date=None,
        total=None,
        currency="руб",
        requisites={"Дата оплаты по 1С": "вчера"},
        parties=(),
        items=(),
    )
    good = commerceml.ImportedDocument(
        id=str(paid.pk),
        number=paid.number,
        operation="Заказ товара",
        date=None,
        total=None,
        currency="руб",
        requisites={"Дата оплаты по 1С": "2026-01-17T09:15:00", "Номер оплаты по 1С": "7"},
        parties=(),
        items=(),
    )
    already_void = commerceml.ImportedDocument(
        id=str(other.pk),
        number=other.number,
        operation="Заказ товара",
        date=None,
        total=None,
        currency="руб",
        requisites={"Отменен": "true"},
        parties=(),
        items=(),
    )

    result = documents_apply(
        name="buh", documents=[bad_date, already_void, good], exchange=credentials_for("buh")
    )

    assert (result.documents, result.paid, result.unchanged) == (3, 1, 1)
    assert result.problems == [f"{paid.number}: unreadable date 'вчера'"]
    paid.refresh_from_db()
    assert paid.status == "paid"


def test_bad_xml_is_a_clear_failure(client, exchange_settings, issued):
    logged_in(client)
    get(client, "init")

    broken = upload(
        client,
        "bad.xml",
        "<КоммерческаяИнформация><Документ><Ид>1</Документ></КоммерческаяИнформация>".encode(),
    )
    truncated = upload(client, "cut.xml", "<КоммерческаяИнформация><Документ><Ид>1</Ид>".encode())
    truncated_import = upload(client, "cut.xml", b"", mode="import")
    foreign = upload(client, "x.xml", b"<html><body>hi</body></html>")
    foreign_import = upload(client, "x.xml", b"", mode="import")
    missing = upload(client, "never-sent.xml", b"", mode="import")

    assert text(broken).startswith("failure\nnot well-formed XML: mismatched tag")
    assert text(truncated) == "success"  # may be the first chunk of several
    assert text(truncated_import).startswith("failure\nnot well-formed XML")
    assert text(foreign_import) == "failure\nthe root element is <html>, expected <КоммерческаяИнформация>"
    assert text(foreign) == "success"
    assert text(missing).startswith("failure\nno uploaded file never-sent.xml")


def test_entity_tricks_are_refused(client, exchange_settings, issued):
    logged_in(client)
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        b"<lolz>&lol2;</lolz>"
    )
    upload(client, "bomb.xml", bomb)

    assert (
        text(upload(client, "bomb.xml", b"", mode="import"))
        == "failure\nforbidden XML construct (EntitiesForbidden)"
    )


def test_wrong_password_and_missing_session_fail(client, exchange_settings, issued):
    wrong = client.get(URL, {"type": "sale", "mode": "checkauth"}, HTTP_AUTHORIZATION=basic(password="nope"))
    no_header = get(client, "checkauth")
    no_session = get(client, "query")
    client.cookies[COOKIE_NAME] = "forged:value"
    forged = get(client, "query")
    unknown = client.get(
        "/sync/1c_exchange/nobody/", {"type": "sale", "mode": "checkauth"}, HTTP_AUTHORIZATION=basic()
    )

    assert text(wrong) == "failure\nwrong user name or password"
    assert text(no_header) == "failure\nwrong user name or password"
    assert text(no_session) == "failure\nnot authorized; call mode=checkauth first"
    assert text(forged).startswith("failure\nnot authorized")
    assert unknown.status_code == 404 and text(unknown, "utf-8").startswith("failure\nunknown exchange")


def test_the_chunk_size_never_exceeds_what_django_accepts(exchange_settings):
    exchange_settings.HUB_1C_EXCHANGE = {
        "buh": {"username": USER, "password": PASSWORD, "file_limit": 50_000_000}
    }
    exchange_settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000

    assert credentials_for("buh").file_limit == 1_000_000
    assert credentials_for("nobody") is None


def test_basic_auth_on_every_request_also_works(client, exchange_settings, issued):
    response = client.get(URL, {"type": "sale", "mode": "query"}, HTTP_AUTHORIZATION=basic())

    assert len(commerceml.parse_documents(response.content)) == 2


def test_protocol_errors(client, exchange_settings, issued):
    logged_in(client)

    assert text(get(client, "file", kind="catalog", filename="import.xml")).startswith(
        "failure\nonly the sale"
    )
    assert text(get(client, "init", kind="catalog")).startswith("zip=no")
    assert text(get(client, "dance")) == "failure\nunknown mode 'dance'"
    assert text(get(client, "checkauth", kind="stock")).startswith("failure\nunknown type")
    assert text(get(client, "file", filename="a.xml")) == "failure\nmode=file expects a POST body"
    assert text(upload(client, "..", b"x")) == "failure\nbad file name '..'"
    # a path in the file name never leaves the upload directory
    assert text(upload(client, "../../etc/passwd", b"x")) == "success"
    assert (exchange_settings.VAR_DIR / "1c_exchange" / "buh" / "uploads" / "passwd").read_bytes() == b"x"


# ---- the pure CommerceML layer ------------------------------------------------------------------


def test_builder_and_parser_round_trip_in_both_encodings():
    order = commerceml.Order(
        id="17",
        number="2026-00017",
        date=dt.datetime(2026, 1, 15, 10, 0, 5),
        party=commerceml.Party(id="client-5", name="ИП Иванов ₽", inn="500100732259", is_person=True),
        items=(
            commerceml.Item(
                id="SKU-1", name="Насос", quantity=D("3"), total=D("100.00"), vat_rate=None, kind="Товар"
            ),
        ),
        total=D("100.00"),
    )
    for encoding in ("windows-1251", "utf-8"):
        data = commerceml.build_orders(
            [order], generated_at=dt.datetime(2026, 1, 15, 11, 0), encoding=encoding
        )
        [parsed] = commerceml.parse_documents(data)
        assert parsed.parties[0]["Наименование"] == "ИП Иванов ₽"  # ₽ is a character reference in cp1251
        assert "КПП" not in parsed.parties[0]
        assert parsed.items[0]["ЦенаЗаЕдиницу"] == "33.33"
        assert parsed.date == dt.date(2026, 1, 15)


def test_parser_reads_namespaced_and_container_documents_and_1c_dates():
    data = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2" ВерсияСхемы="3.1"><Контейнер><Документ>'
        "<Ид>5</Ид><Номер>5</Номер><Сумма>1 200,50</Сумма><ЗначенияРеквизитов><ЗначениеРеквизита>"
        "<Наименование>Дата оплаты по 1С</Наименование><Значение>17.01.2026 9:15:00</Значение>"
        "</ЗначениеРеквизита></ЗначенияРеквизитов></Документ></Контейнер></КоммерческаяИнформация>"
    ).encode()

    [document] = commerceml.parse_documents(data)

    assert document.total == D("1200.50")
    assert document.paid and document.payment_date == dt.datetime(2026, 1, 17, 9, 15)
    with pytest.raises(commerceml.CommerceMLError, match="neither"):
        commerceml.parse_documents("<КоммерческаяИнформация><Документ/></КоммерческаяИнформация>".encode())
    with pytest.raises(commerceml.CommerceMLError, match="not a number"):
        commerceml.parse_documents(
            "<КоммерческаяИнформация><Документ><Ид>1</Ид><Сумма>много</Сумма></Документ></КоммерческаяИнформация>".encode()
        )
    with pytest.raises(commerceml.CommerceMLError, match="empty"):
        commerceml.parse_documents(b"  ")


# ---- the registered connector -------------------------------------------------------------------


def make_connector(credentials=None):
    config = ConnectionConfig(
        name="buh",
        system="onec_commerceml",
        base_url="https://hub.example.ru/sync/1c_exchange/buh/",
        credentials=MemoryCredentialStore(
            {"username": USER, "password": PASSWORD} if credentials is None else credentials
        ),
    )
    return connector_class("onec_commerceml")(config)


def test_connector_turns_an_upload_into_events_with_whole_records():
    connector = make_connector()
    body = (FIXTURES / "orders_from_1c.xml").read_bytes()

    events = connector.parse_webhook({}, body)

    assert [(e.external_id, e.action) for e in events] == [
        ("__PAID_ID__", "upsert"),
        ("__CANCELLED_ID__", "upsert"),
        ("7c1f3a52-0b7d-11ef-8c4a-0050569f9999", "upsert"),
    ]
    rules = [Rule(**vars(m)) for m in connector.default_mappings]
    paid = to_canonical(events[0].record.data, rules)
    cancelled = to_canonical(events[1].record.data, rules)
    assert (paid["number"], paid["total"], paid["issue_date"]) == (
        "__PAID_NUMBER__",
        D("2440.00"),
        dt.date(2026, 1, 15),
    )
    assert paid["purpose"] == "БП-000045"
    assert cancelled["status"] == "void"
    with pytest.raises(PermanentError, match="not well-formed"):
        connector.parse_webhook({}, b"<a>")


def test_connector_checks_basic_credentials_and_pulls_nothing():
    connector = make_connector()

    assert connector.verify_webhook({"Authorization": basic()}, b"") is True
    assert connector.verify_webhook({"authorization": basic(password="x")}, b"") is False
    assert connector.verify_webhook({}, b"") is False
    assert list(connector.fetch("invoices")) == []
    connector.check()
    with pytest.raises(AuthError, match="password"):
        make_connector({"username": USER}).check()


def test_a_connection_made_with_connect_is_the_exchange_login(client, settings, tmp_path, db):
    from django.core.management import call_command

    settings.VAR_DIR = tmp_path
    settings.HUB_1C_EXCHANGE = {}
    call_command(
        "connect", "onec_commerceml", "--name", "buh", "--url", "https://1c.example/",
        "--credential", f"username={USER}", "--credential", f"password={PASSWORD}", "--option", "encoding=utf-8",
    )  # fmt: skip

    assert credentials_for("buh").encoding == "utf-8"
    reply = client.get(URL, {"type": "sale", "mode": "checkauth"}, HTTP_AUTHORIZATION=basic())
    assert text(reply, "utf-8").startswith("success\n")
    wrong = client.get(URL, {"type": "sale", "mode": "checkauth"}, HTTP_AUTHORIZATION=basic(password="nope"))
    assert text(wrong, "utf-8").startswith("failure")
