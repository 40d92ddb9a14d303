"""The manager UI without a browser: who sees what, 404s, the board's stale-move refusal, the money
actions, form errors in the user's language, and bounded queries on demo-sized data."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.utils import timezone

from hub import ui_panels
from hub.models import Deal, DomainEvent, Stage
from hub.services import deal_create, deal_update
from invoicing.matching import payment_match
from invoicing.models import Invoice, InvoiceStatus, MatchDecision, MatchStatus
from invoicing.services import payment_record
from notifications.models import Notification
from tests.factories import ClientFactory, CompanyFactory, PipelineFactory

pytestmark = pytest.mark.django_db

LINE = {"description": "Насос", "quantity": D("2"), "unit_price": D("1000.00"), "vat_rate": D("22")}


@pytest.fixture
def world(maria, oleg):
    """Two managers, each with a client and a deal of their own."""
    CompanyFactory()
    PipelineFactory()
    mine = ClientFactory(name="ООО «Мой клиент»", manager=maria, address="Москва")
    theirs = ClientFactory(name="ООО «Чужой клиент»", manager=oleg, address="Москва")
    return {
        "my_client": mine,
        "their_client": theirs,
        "my_deal": deal_create(title="Насосы", client=mine, lines=[LINE]),
        "their_deal": deal_create(title="Чужие насосы", client=theirs, lines=[LINE]),
    }


def as_user(client, user, language="en"):
    client.force_login(user)
    client.cookies["django_language"] = language
    return client


def test_front_door_and_sign_in(client, maria):
    assert client.get("/")["Location"] == "/app/"
    # given no session, when a page is asked for, then sign-in comes first and leads back
    response = client.get("/app/clients/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/app/clients/"
    page = client.get("/accounts/login/?next=/app/clients/")
    assert page.status_code == 200 and b'name="password"' in page.content
    done = client.post("/accounts/login/", {"username": "maria", "password": "correct horse battery staple",
                                             "next": "/app/clients/"})  # fmt: skip
    assert done.status_code == 302 and done["Location"] == "/app/clients/"


def test_wrong_password_is_refused_in_the_users_language(client, maria):
    client.cookies["django_language"] = "ru"
    page = client.post("/accounts/login/", {"username": "maria", "password": "nope"})
    assert page.status_code == 200
    assert "Пожалуйста, введите правильные имя пользователя и пароль" in page.content.decode()


def test_manager_cannot_open_another_managers_client_by_url(client, world, maria):
    as_user(client, maria)
    own = client.get(f"/app/clients/{world['my_client'].pk}/")
    assert own.status_code == 200 and "ООО «Мой клиент»" in own.content.decode()
    # when she types the other manager's client id, then it is a 404 exactly like an id that never existed
    other = client.get(f"/app/clients/{world['their_client'].pk}/")
    missing = client.get("/app/clients/987654321/")
    assert other.status_code == missing.status_code == 404
    assert "Чужой" not in other.content.decode()
    assert client.get(f"/app/deals/{world['their_deal'].pk}/").status_code == 404
    assert client.post(f"/app/deals/{world['their_deal'].pk}/move/", {"stage": 1}).status_code == 404
    assert client.post(f"/app/deals/{world['their_deal'].pk}/issue-invoice/").status_code == 404
    # nor the other manager's invoice, its PDF or its preview
    from invoicing.services import invoice_issue_from_deal

    theirs, _ = invoice_issue_from_deal(deal=world["their_deal"])
    for url in (
        f"/app/invoices/{theirs.pk}/",
        f"/app/invoices/{theirs.pk}/pdf/",
        f"/app/invoices/{theirs.pk}/preview/",
    ):
        assert client.get(url).status_code == 404
    assert theirs.number not in client.get("/app/invoices/").content.decode()


def test_lists_show_a_manager_only_their_own(client, world, maria):
    as_user(client, maria)
    clients = client.get("/app/clients/").content.decode()
    assert "ООО «Мой клиент»" in clients and "Чужой" not in clients
    deals = client.get("/app/deals/").content.decode()
    assert "Насосы" in deals and "Чужие насосы" not in deals
    board = client.get("/app/deals/board/").content.decode()
    assert "Насосы" in board and "Чужие насосы" not in board


def test_accountant_reads_everyone_and_the_money_pages_and_a_manager_does_not(client, world, maria, anna):
    as_user(client, anna)
    assert client.get(f"/app/clients/{world['their_client'].pk}/").status_code == 200
    assert client.get("/app/payments/").status_code == 200
    assert client.get("/app/sync/").status_code == 403  # administrators only
    as_user(client, maria)
    assert client.get("/app/payments/").status_code == 403
    assert client.get("/app/sync/").status_code == 403
    assert "/app/payments/" not in client.get("/app/").content.decode()


def test_a_user_in_no_role_sees_nothing(client, world):
    from tests.factories import UserFactory

    as_user(client, UserFactory(username="nobody"))
    assert client.get(f"/app/clients/{world['my_client'].pk}/").status_code == 404
    assert "Мой клиент" not in client.get("/app/clients/").content.decode()
    assert client.get("/app/dashboards/").status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "/app/clients/999999/",
        "/app/deals/999999/",
        "/app/invoices/999999/",
        "/app/invoices/999999/pdf/",
        "/app/invoices/999999/preview/",
    ],
)
def test_unknown_ids_are_404(client, root, url):
    as_user(client, root)
    assert client.get(url).status_code == 404


def test_board_move_goes_through_the_deal_service_and_leaves_an_event(client, world, maria):
    deal = world["my_deal"]
    won = Stage.objects.get(code="won")
    as_user(client, maria)
    response = client.post(
        f"/app/deals/{deal.pk}/move/",
        {"stage": won.pk, "updated_at": deal.updated_at.isoformat()},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and "moved to Won" in response.content.decode()
    deal.refresh_from_db()
    assert deal.stage == won and deal.status == "won" and deal.won_at is not None
    event = DomainEvent.objects.get(type="deal.stage_changed", aggregate_id=str(deal.pk))
    assert event.origin == "ui" and event.actor == maria
    assert DomainEvent.objects.filter(type="deal.won", aggregate_id=str(deal.pk)).exists()


@pytest.mark.parametrize(
    ("language", "text"),
    [("en", "was changed by someone else meanwhile"), ("ru", "тем временем изменил кто-то другой")],
)
def test_a_stale_board_move_is_refused_with_a_clear_message(client, world, maria, oleg, language, text):
    deal = world["my_deal"]
    drawn_at = deal.updated_at.isoformat()
    # given the board was drawn, when someone else moves the deal meanwhile
    deal_update(deal=deal, stage=Stage.objects.get(code="proposal"), actor=oleg)
    as_user(client, maria, language)
    response = client.post(
        f"/app/deals/{deal.pk}/move/",
        {"stage": Stage.objects.get(code="won").pk, "updated_at": drawn_at},
        follow=True,
    )
    # then the move is refused, the deal stays where the other person put it, and the user is told why
    assert text in response.content.decode()
    deal.refresh_from_db()
    assert deal.stage.code == "proposal" and deal.status == "open"
    assert not DomainEvent.objects.filter(type="deal.won").exists()


def test_a_move_without_the_drawn_version_is_refused(client, world, maria):
    deal = world["my_deal"]
    as_user(client, maria)
    client.post(f"/app/deals/{deal.pk}/move/", {"stage": Stage.objects.get(code="won").pk})
    deal.refresh_from_db()
    assert deal.stage.code == "new"


def test_a_stage_of_another_pipeline_is_404(client, world, maria):
    from hub.services import pipeline_create

    other = pipeline_create(name="Other", stages=[{"name": "X", "code": "x"}])
    as_user(client, maria)
    response = client.post(
        f"/app/deals/{world['my_deal'].pk}/move/",
        {"stage": other.stages.get().pk, "updated_at": world["my_deal"].updated_at.isoformat()},
    )
    assert response.status_code == 404


def test_issue_invoice_from_the_deal_page_then_download_the_pdf(client, world, maria):
    deal = world["my_deal"]
    as_user(client, maria)
    page = client.get(f"/app/deals/{deal.pk}/").content.decode()
    assert "Issue invoice" in page and "2 440,00" not in page  # English grouping in English
    response = client.post(f"/app/deals/{deal.pk}/issue-invoice/")
    invoice = Invoice.objects.get(deal=deal)
    assert response.status_code == 302 and response["Location"] == f"/app/invoices/{invoice.pk}/"
    assert invoice.status == InvoiceStatus.ISSUED and invoice.amount_total == D("2440.00")
    assert DomainEvent.objects.get(type="invoice.issued").origin == "ui"
    # a second click does not bill twice: the deal page says why
    again = client.post(f"/app/deals/{deal.pk}/issue-invoice/", follow=True)
    assert "already invoiced" in again.content.decode() and Invoice.objects.filter(deal=deal).count() == 1
    pdf = client.get(f"/app/invoices/{invoice.pk}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and "attachment" in pdf["Content-Disposition"]
    preview = client.get(f"/app/invoices/{invoice.pk}/preview/")
    assert preview.status_code == 200 and invoice.number in preview.content.decode()
    assert (
        preview["X-Frame-Options"] == "SAMEORIGIN"
        and "default-src 'none'" in preview["Content-Security-Policy"]
    )


def test_void_is_the_accountants_and_needs_a_reason_in_the_users_language(client, world, maria, anna):
    from invoicing.services import invoice_issue_from_deal

    invoice, _ = invoice_issue_from_deal(deal=world["my_deal"])
    as_user(client, maria)
    assert client.post(f"/app/invoices/{invoice.pk}/void/", {"reason": "x"}).status_code == 403
    as_user(client, anna, "ru")
    refused = client.post(f"/app/invoices/{invoice.pk}/void/", {"reason": ""})
    assert refused.status_code == 400 and "Обязательное поле." in refused.content.decode()
    bad_mail = client.post(f"/app/invoices/{invoice.pk}/send/", {"to": "not-an-address"})
    assert (
        bad_mail.status_code == 400
        and "Введите правильный адрес электронной почты." in bad_mail.content.decode()
    )
    client.post(f"/app/invoices/{invoice.pk}/void/", {"reason": "ошибка в реквизитах"})
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.VOID and invoice.void_reason == "ошибка в реквизитах"


def test_send_queues_a_delivery(client, world, anna, django_capture_on_commit_callbacks):
    from invoicing.services import invoice_issue_from_deal

    invoice, _ = invoice_issue_from_deal(deal=world["my_deal"])
    as_user(client, anna)
    response = client.post(f"/app/invoices/{invoice.pk}/send/", {"to": "buyer@example.com"}, follow=True)
    assert "queued for sending to buyer@example.com" in response.content.decode()
    assert invoice.deliveries.get().to == "buyer@example.com"


def test_review_queue_reassign_with_a_wrong_number_shows_the_field_error(client, world, anna):
    from invoicing.services import invoice_issue_from_deal

    invoice, _ = invoice_issue_from_deal(deal=world["my_deal"])
    payment = payment_record(
        amount=D("500.00"), received_at=timezone.now(), payer_name="Кто-то", purpose="за всё"
    )
    decision = payment_match(payment=payment)
    assert decision.status == MatchStatus.REVIEW
    as_user(client, anna, "ru")
    page = client.get("/app/payments/").content.decode()
    assert "Ждут проверки" in page and "Кто-то" in page
    wrong = client.post(
        f"/app/payments/review/{decision.pk}/", {"action": "reassign", f"d{decision.pk}-number": "NOPE"}
    )
    assert wrong.status_code == 400 and "Нет открытого счёта с таким номером." in wrong.content.decode()
    client.post(
        f"/app/payments/review/{decision.pk}/",
        {"action": "reassign", f"d{decision.pk}-number": invoice.number},
    )
    decision.refresh_from_db()
    invoice.refresh_from_db()
    assert decision.status == MatchStatus.REASSIGNED and invoice.amount_paid == D("500.00")
    assert MatchDecision.objects.filter(status=MatchStatus.REVIEW).count() == 0


def test_an_unknown_dashboard_part_is_404(client, root):
    as_user(client, root)
    assert client.get("/app/dashboards/", {"part": "secrets"}).status_code == 404


def test_dashboard_filters_refuse_a_backwards_period_in_russian(client, world, root):
    as_user(client, root, "ru")
    response = client.get("/app/dashboards/", {"date_from": "2026-05-01", "date_to": "2026-04-01"})
    assert response.status_code == 400 and "Конец периода раньше его начала." in response.content.decode()
    bad = client.get("/app/dashboards/", {"date_from": "not a date"})
    assert bad.status_code == 400 and "Введите правильную дату." in bad.content.decode()


def test_numbers_and_dates_follow_the_language(client, world, maria):
    as_user(client, maria, "ru")
    page = client.get(f"/app/deals/{world['my_deal'].pk}/").content.decode()
    assert "2\xa0440,00\xa0₽" in page and "Выставить счёт" in page
    as_user(client, maria, "en")
    assert "2,440.00\xa0₽" in client.get(f"/app/deals/{world['my_deal'].pk}/").content.decode()


def test_the_language_switch_remembers_the_choice(client, maria):
    as_user(client, maria)
    client.post("/i18n/setlang/", {"language": "ru", "next": "/app/"})
    assert "Сегодня" in client.get("/app/").content.decode()


def test_unread_counter_and_marking_read(client, maria):
    as_user(client, maria)
    assert client.get("/app/notifications/unread/").content == b""
    note = Notification.objects.create(user=maria, event_type="payment.received", title="Оплата 1 000 ₽")
    assert client.get("/app/notifications/unread/").content == b"1"
    assert "Оплата 1 000 ₽" in client.get("/app/notifications/").content.decode()
    client.post(f"/app/notifications/{note.pk}/read/")
    assert client.get("/app/notifications/unread/").content == b""
    # anonymous polling gets nothing, not a redirect page
    client.logout()
    assert client.get("/app/notifications/unread/").content == b""


def test_sync_page_says_no_connections_while_sync_has_no_models(client, root):
    as_user(client, root)
    page = client.get("/app/sync/")
    assert page.status_code == 200 and "No connections." in page.content.decode()


def test_a_failing_panel_leaves_the_rest_of_the_page(client, world, maria):
    @ui_panels.register_panel("client", key="broken", order=1)
    def broken(obj, user, request):
        raise RuntimeError("boom")

    try:
        as_user(client, maria)
        page = client.get(f"/app/clients/{world['my_client'].pk}/")
        assert page.status_code == 200 and "Payment history" in page.content.decode()
    finally:
        ui_panels.unregister_panel("client", "broken")


def test_client_360_shows_money_ltv_and_sync(client, world, maria):
    from invoicing.services import invoice_issue_from_deal, payment_allocate

    invoice, _ = invoice_issue_from_deal(deal=world["my_deal"])
    payment = payment_record(amount=D("1000.00"), received_at=timezone.now(), client=world["my_client"])
    payment_allocate(payment=payment, invoice=invoice)
    as_user(client, maria)
    page = client.get(f"/app/clients/{world['my_client'].pk}/").content.decode()
    assert invoice.number in page and "Partially paid" in page
    assert "1,440.00\xa0₽" in page  # debt: 2,440.00 issued − 1,000.00 paid
    assert "Lifetime value" in page and "In other systems" in page


# --- demo-sized data: every page, bounded queries --------------------------------------------------


@pytest.fixture
def demo(db):
    from django.contrib.auth import get_user_model

    from analytics.rollups import rollups_rebuild
    from hub.demo import seed_demo

    from .conftest import role

    role("Manager")  # seed_demo puts its managers in it
    seed_demo(today=dt.date(2026, 3, 15))
    rollups_rebuild()
    return get_user_model().objects.filter(groups__name="Manager").order_by("id").first()


PAGE_BUDGETS = [
    ("/app/", 14),
    ("/app/clients/", 10),
    ("/app/clients/?q=%D0%9E%D0%9E%D0%9E&kind=company", 10),
    ("/app/clients/{client}/", 20),
    ("/app/deals/", 10),
    ("/app/deals/?status=won&won_from=2025-10-01&won_to=2025-10-31", 10),
    ("/app/deals/board/", 16),
    ("/app/deals/{deal}/", 16),
    ("/app/invoices/", 8),
    ("/app/invoices/{invoice}/", 12),
    ("/app/payments/", 10),
    ("/app/notifications/", 8),
    ("/app/dashboards/", 8),
    ("/app/dashboards/?part=kpis", 24),
    ("/app/dashboards/?part=charts", 16),
    ("/app/dashboards/?part=tops", 12),
    ("/app/dashboards/?part=receivables", 16),
    ("/app/dashboards/?part=cohorts", 8),
    ("/app/dashboards/?all=1&date_from=2025-06-01&date_to=2026-03-15&channel={channel}", 70),
    ("/app/sync/", 6),
]


def test_every_page_renders_with_bounded_queries_on_demo_data(
    client, demo, root, django_assert_max_num_queries
):
    from hub.models import Channel, Client

    manager = demo
    ids = {
        "client": Client.objects.filter(manager=manager).order_by("id").first().pk,
        "deal": Deal.objects.filter(manager=manager).order_by("id").first().pk,
        "invoice": Invoice.objects.filter(client__manager=manager)
        .exclude(status="draft")
        .order_by("id")
        .first()
        .pk,
        "channel": Channel.objects.order_by("id").first().pk,
    }
    for user in (root, manager):
        as_user(client, user, "ru")
        for url, budget in PAGE_BUDGETS:
            url = url.format(**ids)
            if user is manager and url.startswith(("/app/payments/", "/app/sync/")):
                continue
            with django_assert_max_num_queries(budget):
                response = client.get(url)
            assert response.status_code == 200, (user.username, url)
