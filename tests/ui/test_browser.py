"""The manager UI in a real browser (Debian's chromium through Playwright): one manager's day from sign-in
to the payment notification, and screenshots of the key pages for the README."""

import datetime as dt
import os
import re
import tempfile
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Page, expect

from hub.api_auth import apikey_create
from hub.models import Deal, Stage
from hub.services import deal_create
from invoicing.models import Invoice, InvoiceStatus
from notifications.models import Notification, NotificationRule
from tests.factories import ClientFactory, CompanyFactory, PipelineFactory

from .conftest import PASSWORD, ensure_migration_data

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# The README's screenshots are refreshed with UPDATE_SCREENSHOTS=1; otherwise they go to a scratch folder.
SCREENSHOTS = (
    Path(django_settings.BASE_DIR) / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "hub-ui-screenshots"
)


@pytest.fixture(autouse=True)
def migration_data(transactional_db):
    ensure_migration_data()


@pytest.fixture
def eager_events(settings):
    """Events dispatch inline in the live server's thread, as a worker would moments later."""
    from hub.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


class JsErrors:
    """Every uncaught page error, with the URL it happened on."""

    def __init__(self, page: Page):
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))

    def assert_none(self):
        assert self.errors == []


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def sign_in(page: Page, username: str, base_url: str) -> None:
    page.goto(f"{base_url}/app/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("Today"))).to_be_visible()


def test_a_managers_day_from_sign_in_to_the_payment_notification(page: Page, base_url, maria, eager_events):
    # given a manager with a client, a deal in negotiation, an API key for the bank robot and a rule
    # that tells the manager when an invoice is paid
    CompanyFactory()
    PipelineFactory()
    client = ClientFactory(
        name="ООО «Ромашка-Покупатель»", inn="7736050003", kpp="773601001", address="Москва", manager=maria
    )
    deal = deal_create(
        title="Насосы для котельной",
        client=client,
        stage=Stage.objects.get(code="negotiation"),
        lines=[
            {
                "description": "Насос ЦНС 38",
                "quantity": D("3"),
                "unit_price": D("10000.00"),
                "vat_rate": D("22"),
            }
        ],
    )
    NotificationRule.objects.create(
        name="Invoice paid", event_type="invoice.paid", channels=["inapp"], to_manager=True,
        title_en="Invoice {{ number }} is paid", body_en="Paid in full.",
    )  # fmt: skip
    _, key = apikey_create(name="bank", scope="write")
    js = JsErrors(page)
    page.set_viewport_size({"width": 1280, "height": 860})

    # sign in and find the client
    sign_in(page, "maria", base_url)
    page.get_by_role("link", name="Clients", exact=True).click()
    page.get_by_label("Search").fill("Ромашка")
    link = page.get_by_role("link", name="ООО «Ромашка-Покупатель»")
    expect(link).to_be_visible()
    link.click()
    expect(page.get_by_role("heading", name="ООО «Ромашка-Покупатель»")).to_be_visible()
    expect(page.get_by_role("heading", name="Requisites")).to_be_visible()
    expect(page.get_by_text("7736050003")).to_be_visible()

    # move the deal to Won on the board by dragging its card
    page.get_by_role("link", name="Board", exact=True).click()
    card = page.locator(f'.card[data-deal="{deal.pk}"]')
    won = page.locator(f'.column[data-stage="{Stage.objects.get(code="won").pk}"]')
    card.drag_to(won)
    expect(page.get_by_text("moved to Won")).to_be_visible()
    expect(won.locator(f'.card[data-deal="{deal.pk}"]')).to_be_visible()
    assert Deal.objects.get(pk=deal.pk).status == "won"

    # issue the invoice from the deal page, and download its PDF
    won.get_by_role("link", name="Насосы для котельной").click()
    expect(page.get_by_role("heading", name="Насосы для котельной")).to_be_visible()
    page.get_by_role("button", name="Issue invoice").click()
    expect(page.get_by_text(re.compile(r"Invoice .* is issued\."))).to_be_visible()
    invoice = Invoice.objects.get(deal=deal)
    assert invoice.status == InvoiceStatus.ISSUED and invoice.amount_total == D("36600.00")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download PDF").or_(
            page.get_by_role("link", name="Download PDF")
        ).click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
    assert download.value.suggested_filename == f"{invoice.number}.pdf"

    # the bank robot records the payment through the REST API
    response = page.request.post(
        f"{base_url}/api/v1/payments/",
        headers={"Authorization": f"Bearer {key}"},
        data={
            "amount": "36600.00",
            "received_at": dt.datetime.now(dt.UTC).isoformat(),
            "client": client.pk,
            "external_id": "bank-1",
            "payer_name": "ООО «Ромашка-Покупатель»",
            "allocations": [{"invoice": invoice.pk}],
        },
    )
    assert response.status == 201, response.text()

    # and the manager sees the notification arrive: the unread counter polls every 10 s
    expect(page.locator("#unread")).to_have_text("1", timeout=15_000)
    note = Notification.objects.get(user=maria)
    assert note.title == f"Invoice {invoice.number} is paid" and note.link == f"/app/invoices/{invoice.pk}/"
    page.get_by_role("link", name=re.compile("Inbox")).click()
    page.get_by_role("link", name=f"Invoice {invoice.number} is paid").click()
    expect(page.get_by_role("heading", name=f"Invoice {invoice.number}")).to_be_visible()
    expect(page.locator(".status-paid").first).to_be_visible()
    js.assert_none()


def test_screenshots_of_the_key_pages_with_demo_data(page: Page, base_url, root):
    from analytics.rollups import rollups_rebuild
    from hub.demo import seed_demo

    seed_demo(today=dt.date.today())
    rollups_rebuild()
    # one bank payment nobody can place, for the review queue
    from django.utils import timezone

    from invoicing.matching import payment_match
    from invoicing.services import payment_record

    stray = payment_record(
        amount=D("12345.00"), received_at=timezone.now(), payer_name="ООО «Неизвестный плательщик»",
        purpose="Оплата по договору № 17 от 01.10.2026", source="bank", external_id="stmt-17",
    )  # fmt: skip
    assert payment_match(payment=stray).status == "review"
    root.set_password(PASSWORD)
    root.save()
    manager = Deal.objects.filter(manager__isnull=False).order_by("id").first().manager
    client = manager.clients.order_by("id").first()
    deal = Deal.objects.filter(manager=manager, lines__isnull=False).order_by("-id").first()
    invoice = (
        Invoice.objects.exclude(status="draft").filter(allocations__isnull=False).order_by("-id").first()
    )
    js = JsErrors(page)
    page.set_viewport_size({"width": 1366, "height": 900})
    sign_in(page, "root", base_url)
    shot(page, "home")
    pages = [
        ("clients", "/app/clients/", "Clients"),
        ("client-360", f"/app/clients/{client.pk}/", client.name),
        ("board", "/app/deals/board/", "Board"),
        ("deal", f"/app/deals/{deal.pk}/", deal.title),
        ("invoice", f"/app/invoices/{invoice.pk}/", str(invoice.number)),
        ("payments", "/app/payments/", "Payments"),
        ("dashboards", "/app/dashboards/", "Dashboards"),
        ("sync", "/app/sync/", "Sync health"),
    ]
    for name, url, heading in pages:
        page.goto(f"{base_url}{url}")
        expect(page.locator("h1").first).to_contain_text(heading)
        if name == "dashboards":  # its five parts load in parallel after the page
            expect(page.locator("[aria-busy=true]")).to_have_count(0)
            page.wait_for_function("() => document.querySelector('#chart-gp')?.dataset.drawn === '1'")
        shot(page, name)
    # the same in Russian
    page.get_by_label("Language").select_option("ru")
    expect(page.locator("h1").first).to_contain_text("Состояние синхронизации")
    page.goto(f"{base_url}/app/dashboards/")
    expect(page.locator("h1").first).to_contain_text("Аналитика")
    expect(page.locator("[aria-busy=true]")).to_have_count(0)
    page.wait_for_function("() => document.querySelector('#chart-cac')?.dataset.drawn === '1'")
    shot(page, "dashboards-ru")
    js.assert_none()
