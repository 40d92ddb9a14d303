"""The admin: every page renders, writes go through the services, issued money is read-only, keys are shown once."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from analytics.models import CurrencyRate
from analytics.rollups import rollups_rebuild
from hub.api_auth import apikey_create
from hub.models import ApiKey, Client, Deal, DomainEvent, EventDelivery, IdempotencyRecord
from hub.services import client_create, deal_create
from invoicing.models import Invoice, InvoiceDelivery, InvoiceStatus, InvoiceTrigger, Payment
from invoicing.services import invoice_create_draft, invoice_issue, payment_record
from tests.factories import (
    ChannelFactory,
    ClientFactory,
    ContactFactory,
    MarketingSpendFactory,
    ProductFactory,
    UserFactory,
    person_inn,
)

pytestmark = pytest.mark.django_db

ADMIN_APPS = ("hub", "invoicing", "analytics")
RAW_KEY_RE = re.compile(r"hub_[0-9a-f]{8}_[A-Za-z0-9_\-]{20,}")


@pytest.fixture(autouse=True)
def plain_static_storage(settings):
    # With DEBUG off the settings pick the manifest storage, which needs collectstatic; pages here
    # only need {% static %} to resolve.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "x")


@pytest.fixture
def staff(client, superuser):
    client.force_login(superuser)
    return client


def management_form(prefix: str, total: int = 0, initial: int = 0) -> dict[str, str]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


@pytest.fixture
def hub_data(company, pipeline, superuser):
    """One row of every model the admin shows, written the way the hub writes them."""
    channel = ChannelFactory(name="Exhibition", code="exhibition")
    client = ClientFactory(manager=superuser, channel=channel)
    ContactFactory(client=client, is_primary=True)
    product = ProductFactory()
    deal = deal_create(title="Pumps", client=client, lines=[{"product": product, "quantity": 3}])
    draft = invoice_create_draft(client=client, deal=deal, lines=[{"product": product, "quantity": 1}])
    issued = invoice_issue(
        invoice=invoice_create_draft(client=client, lines=[{"product": product, "quantity": 2}])
    )
    payment = payment_record(
        amount=Decimal("1000.00"),
        received_at=timezone.now(),
        client=client,
        external_id="PP-1",
        allocations=[{"invoice": issued, "amount": Decimal("1000.00")}],
    )
    MarketingSpendFactory(channel=channel)
    CurrencyRate.objects.create(currency="USD", date=dt.date(2026, 1, 1), rate=Decimal("90"))
    rollups_rebuild()  # the analytics rollups have a row for the payment above
    apikey_create(name="erp", scope="write")
    IdempotencyRecord.objects.create(
        principal="key:1", key="k-1", method="POST", path="/api/v1/clients/", fingerprint="f" * 64
    )
    EventDelivery.objects.create(event=DomainEvent.objects.first(), handler="test.handler", status="failed")
    # payment intake (issue 6): a statement import, a decision waiting for review, a gateway notification
    from invoicing.bank_statements import bank_statement_import
    from invoicing.matching import payment_match
    from invoicing.models import GatewayEvent
    from invoicing.overdue import invoices_mark_overdue

    bank_statement_import(
        data="1CClientBankExchange\nВерсияФормата=1.03\nКонецФайла\n".encode(), file_name="empty.txt"
    )
    payment_match(payment=payment_record(amount=Decimal("5.00"), received_at=timezone.now(), purpose="?"))
    GatewayEvent.objects.create(gateway="stripe", status="refused", reason="forged")
    invoices_mark_overdue(today=issued.due_date + dt.timedelta(days=1))
    InvoiceTrigger.objects.create(name="Won: invoice", stage=deal.pipeline.stages.get(code="won"))
    InvoiceDelivery.objects.create(invoice=issued, to=client.email, subject="Счёт")
    return SimpleNamespace(
        client=client,
        deal=deal,
        draft=draft,
        issued=issued,
        payment=payment,
        product=product,
        channel=channel,
    )


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


# --- every page ------------------------------------------------------------------------------------------


def test_every_model_of_the_hub_apps_has_an_admin():
    # given the models of hub, invoicing and analytics
    models = [m for label in ADMIN_APPS for m in apps.get_app_config(label).get_models()]
    # then each one is registered
    missing = [m._meta.label for m in models if m not in admin.site._registry]
    assert missing == []


def test_every_changelist_add_and_change_page_renders(staff, hub_data, rf, superuser):
    # given a superuser and one row of everything
    request = rf.get("/")
    request.user = superuser
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ADMIN_APPS:
            continue
        # when the changelist is opened, then it lists the data
        response = staff.get(admin_url(model, "changelist"))
        assert response.status_code == 200, model._meta.label
        assert response.context["cl"].result_count >= 1, model._meta.label
        # when the add page is opened, then it renders where adding is allowed at all
        response = staff.get(admin_url(model, "add"))
        expected = 200 if model_admin.has_add_permission(request) else 403
        assert response.status_code == expected, model._meta.label
        # when a row is opened, then it renders (read-only or not)
        obj = model._default_manager.order_by("pk").first()
        assert staff.get(admin_url(model, "change", obj.pk)).status_code == 200, model._meta.label


def test_client_changelist_queries_do_not_grow_with_rows(staff, django_assert_max_num_queries):
    # given 30 clients, each with its own manager and channel (an N+1 would show as 60 extra queries)
    for i in range(30):
        ClientFactory(manager=UserFactory(), channel=ChannelFactory(name=f"Ch {i}", code=f"ch-{i}"))
    # when the changelist is rendered, then the query count stays small and fixed
    with django_assert_max_num_queries(12):
        response = staff.get(admin_url(Client, "changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 30


# --- money is read-only once issued ----------------------------------------------------------------------


def test_issued_invoice_is_read_only(staff, hub_data):
    # given an issued invoice
    url = admin_url(Invoice, "change", hub_data.issued.pk)
    # when its page is opened
    response = staff.get(url)
    html = response.content.decode()
    # then there is nothing to save and no line can be edited
    assert response.status_code == 200
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
    assert 'name="lines-0-quantity"' not in html
    assert hub_data.issued.number in html
    # and a forged POST is refused and changes nothing
    response = staff.post(url, {"purpose": "changed", "due_date": "2030-01-01"})
    assert response.status_code == 403
    hub_data.issued.refresh_from_db()
    assert hub_data.issued.purpose != "changed"


def test_draft_invoice_is_editable_and_totals_are_recomputed(staff, hub_data):
    # given a draft with one line of one product at 1000.00 + 22% VAT
    draft = hub_data.draft
    line = draft.lines.get()
    url = admin_url(Invoice, "change", draft.pk)
    assert 'name="_save"' in staff.get(url).content.decode()
    # when the quantity is changed to 5 in the admin
    data = {
        "company": draft.company_id,
        "client": draft.client_id,
        "deal": draft.deal_id,
        "currency": "RUB",
        "vat_mode": draft.vat_mode,
        "due_date": "",
        "purpose": "",
        **management_form("lines", total=1, initial=1),
        "lines-0-id": line.pk,
        "lines-0-invoice": draft.pk,
        "lines-0-product": hub_data.product.pk,
        "lines-0-description": line.description,
        "lines-0-unit": line.unit,
        "lines-0-quantity": "5",
        "lines-0-unit_price": "1000.00",
        "lines-0-discount_pct": "0",
        "lines-0-vat_rate": "22.00",
        "lines-0-unit_cost": "600.00",
        **management_form("allocations"),
        "_save": "Save",
    }
    response = staff.post(url, data)
    # then the stored totals follow the lines
    assert response.status_code == 302, response.content.decode()[:2000]
    draft.refresh_from_db()
    assert (draft.amount_net, draft.vat_amount, draft.amount_total) == (
        Decimal("5000.00"),
        Decimal("1100.00"),
        Decimal("6100.00"),
    )
    assert DomainEvent.objects.filter(
        type="invoice.updated", aggregate_id=str(draft.pk), origin="admin"
    ).exists()


# --- API keys --------------------------------------------------------------------------------------------


def test_api_key_added_in_admin_is_shown_once_and_only_its_digest_is_stored(staff, superuser):
    # when a key is added through the admin form
    response = staff.post(
        admin_url(ApiKey, "add"), {"name": "warehouse", "scope": "write", "user": superuser.pk}, follow=True
    )
    # then the page after the redirect shows the raw key, in exactly one message
    assert response.status_code == 200
    shown = [m.message for m in response.context["messages"] if RAW_KEY_RE.search(str(m.message))]
    assert len(shown) == 1
    raw = RAW_KEY_RE.search(str(shown[0])).group(0)
    # and the row holds only its SHA-256 digest
    key = ApiKey.objects.get(name="warehouse")
    assert key.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert key.scope == "write"
    assert key.user == superuser
    assert raw not in {str(v) for v in ApiKey.objects.values_list(flat=False).get(pk=key.pk)}
    # and it is never shown again, nor is the digest
    for url in (admin_url(ApiKey, "changelist"), admin_url(ApiKey, "change", key.pk)):
        html = staff.get(url).content.decode()
        assert raw not in html
        assert key.digest not in html


def test_api_key_scope_is_fixed_after_creation_and_keys_can_be_revoked(staff):
    # given a read-only key
    key, _ = apikey_create(name="bi", scope="read")
    # when its change form is posted with another scope
    staff.post(admin_url(ApiKey, "change", key.pk), {"name": "bi-renamed", "scope": "write", "_save": "Save"})
    # then the name changed but the scope did not
    key.refresh_from_db()
    assert (key.name, key.scope) == ("bi-renamed", "read")
    # when the revoke action runs on it
    response = staff.post(
        admin_url(ApiKey, "changelist"), {"action": "revoke_selected", "_selected_action": [key.pk]}
    )
    # then it is revoked
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


# --- writes go through the services ----------------------------------------------------------------------


def client_form(**overrides) -> dict[str, str]:
    data = {
        "kind": "company",
        "name": "ООО Вектор",
        "legal_name": "",
        "manager": "",
        "channel": "",
        "vat_mode": "",
        "inn": "",
        "kpp": "",
        "ogrn": "",
        "foreign_tax_id": "",
        "country": "RU",
        "address": "",
        "email": "",
        "phone": "",
        "notes": "",
        **management_form("contacts"),
        "_save": "Save",
    }
    data.update(overrides)
    return data


def test_admin_client_with_invalid_inn_shows_an_error_and_creates_nothing(staff):
    # given no clients and no events
    events_before = DomainEvent.objects.count()
    # when a client with a bad INN checksum is submitted
    response = staff.post(admin_url(Client, "add"), client_form(inn="1234567890"))
    # then the form comes back with the error on the INN and nothing was written
    assert response.status_code == 200
    assert "inn" in response.context["adminform"].form.errors
    assert Client.objects.count() == 0
    assert DomainEvent.objects.count() == events_before


def test_admin_client_refused_by_the_service_shows_its_reason_and_creates_nothing(staff):
    # when a person is submitted with a KPP (well-formed, so only the service's rules refuse it)
    response = staff.post(
        admin_url(Client, "add"),
        client_form(kind="person", name="Иванов И. И.", inn=person_inn("5000000001"), kpp="773601001"),
    )
    # then the service's message is on the KPP field, not a 500, and nothing was written
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["kpp"] == ["A person has no KPP."]
    assert Client.objects.count() == 0
    assert DomainEvent.objects.count() == 0


def test_admin_client_is_created_through_the_service_with_its_contacts(staff, superuser):
    # when a client with a national-format phone and one contact is added
    data = client_form(
        phone="8 (916) 123-45-67",
        inn="7707083893",
        **{
            **management_form("contacts", total=1),
            "contacts-0-first_name": "Анна",
            "contacts-0-last_name": "Смирнова",
            "contacts-0-phone": "+7 916 765-43-21",
            "contacts-0-is_primary": "on",
        },
    )
    response = staff.post(admin_url(Client, "add"), data)
    # then the client is stored normalised, with its contact, and the events name the admin and the user
    assert response.status_code == 302, response.content.decode()[:2000]
    client = Client.objects.get()
    assert client.phone == "+79161234567"
    assert client.contacts.get().phone == "+79167654321"
    created = DomainEvent.objects.get(type="client.created")
    assert (created.origin, created.actor_id) == ("admin", superuser.pk)
    assert DomainEvent.objects.filter(type="contact.created", origin="admin").count() == 1


def test_admin_deal_lines_get_product_values_and_totals_from_the_service(staff, company, pipeline):
    # given a client and a product at 1000.00 with 22% VAT
    client = ClientFactory()
    product = ProductFactory()
    stage = pipeline.stages.order_by("order").first()
    # when a deal is added with one line that names only the product and a quantity
    data = {
        "title": "Two pumps",
        "client": client.pk,
        "company": company.pk,
        "pipeline": pipeline.pk,
        "stage": stage.pk,
        "manager": "",
        "channel": "",
        "currency": "RUB",
        "vat_mode": "on_top",
        "expected_close_date": "",
        "lost_reason": "",
        "utm_source": "",
        "utm_medium": "",
        "utm_campaign": "",
        **management_form("lines", total=1),
        "lines-0-product": product.pk,
        "lines-0-quantity": "2",
        "_save": "Save",
    }
    response = staff.post(admin_url(Deal, "add"), data)
    # then the line took the product's price and VAT, and the deal's totals were computed
    assert response.status_code == 302, response.content.decode()[:2000]
    deal = Deal.objects.get()
    line = deal.lines.get()
    assert (line.unit_price, line.vat_rate, line.amount_total) == (
        Decimal("1000.00"),
        Decimal("22.00"),
        Decimal("2440.00"),
    )
    assert (deal.amount_net, deal.amount_total, deal.cost_total) == (
        Decimal("2000.00"),
        Decimal("2440.00"),
        Decimal("1200.00"),
    )
    assert DomainEvent.objects.filter(type="deal.created", origin="admin").count() == 1


def test_payment_added_in_admin_is_recorded_and_allocated_by_the_services(staff, hub_data):
    # given an issued invoice with 1440.00 still due
    invoice = hub_data.issued
    invoice.refresh_from_db()
    due = invoice.amount_total - invoice.amount_paid
    assert due == Decimal("1440.00")
    # when a payment is added with an allocation whose amount is left empty
    data = {
        "company": invoice.company_id,
        "client": invoice.client_id,
        "source": "bank",
        "external_id": "PP-2",
        "amount": str(due),
        "currency": "RUB",
        "received_at_0": "2026-01-15",
        "received_at_1": "10:00:00",
        "payer_name": "Client",
        "payer_inn": "",
        "purpose": "",
        **management_form("allocations", total=1),
        "allocations-0-invoice": invoice.pk,
        "allocations-0-amount": "",
        "_save": "Save",
    }
    response = staff.post(admin_url(Payment, "add"), data)
    # then the payment covers the rest of the invoice, which is now paid
    assert response.status_code == 302, response.content.decode()[:2000]
    payment = Payment.objects.get(external_id="PP-2")
    invoice.refresh_from_db()
    assert (payment.status, payment.amount_allocated) == ("allocated", due)
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.allocations.count() == 2


# --- outbox ----------------------------------------------------------------------------------------------


def test_domain_events_are_view_only_and_can_be_redispatched(staff):
    # given an event not dispatched yet (callbacks do not run inside the test transaction)
    client = client_create(name="Outbox Ltd")
    event = DomainEvent.objects.get(type="client.created", aggregate_id=str(client.pk))
    assert event.dispatched_at is None
    # then the admin offers no add page and no save button
    assert staff.get(admin_url(DomainEvent, "add")).status_code == 403
    assert 'name="_save"' not in staff.get(admin_url(DomainEvent, "change", event.pk)).content.decode()
    # when the re-dispatch action runs on it
    response = staff.post(
        admin_url(DomainEvent, "changelist"), {"action": "redispatch", "_selected_action": [event.pk]}
    )
    # then every handler got it and it is marked dispatched
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.dispatched_at is not None
    assert event.deliveries.filter(status="done").exists()


# --- groups ----------------------------------------------------------------------------------------------


def perms_of(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
    }


def test_groups_exist_after_migrations_with_their_permissions(django_user_model):
    # given the migrated database
    manager, accountant, administrator = (
        perms_of("Manager"),
        perms_of("Accountant"),
        perms_of("Administrator"),
    )
    # then a manager works with clients and deals, reads money and drafts invoices
    assert {"hub.view_client", "hub.change_deal", "hub.add_dealline", "invoicing.add_invoice"} <= manager
    assert {"invoicing.view_payment", "hub.view_product"} <= manager
    assert not {"invoicing.delete_invoice", "invoicing.change_invoice", "hub.delete_client"} & manager
    # and an accountant owns the money and reads the CRM
    assert {
        "invoicing.change_payment",
        "invoicing.delete_invoice",
        "invoicing.change_numbersequence",
    } <= accountant
    assert {"hub.view_client", "hub.change_product", "analytics.change_marketingspend"} <= accountant
    assert not {"hub.change_client", "hub.view_apikey", "analytics.delete_marketingspend"} & accountant
    # and an administrator has everything of the hub apps, beat and auth
    assert {"hub.delete_apikey", "invoicing.delete_payment", "auth.change_user"} <= administrator
    assert "django_celery_beat.change_periodictask" in administrator
    # and membership gives a user those rights
    user = UserFactory()
    user.groups.add(Group.objects.get(name="Manager"))
    user = django_user_model.objects.get(pk=user.pk)
    assert user.has_perm("hub.view_client")
    assert not user.has_perm("invoicing.delete_invoice")


def test_groups_migration_is_idempotent_and_reversible():
    # given the migration's functions and the state it runs in
    migration = importlib.import_module("hub.migrations.0002_groups")
    state_apps = MigrationExecutor(connection).loader.project_state(("hub", "0002_groups")).apps
    schema_editor = SimpleNamespace(connection=connection)
    # (later migrations, e.g. invoicing's, grant their own models' rights: start from this one alone)
    migration.remove_groups(state_apps, schema_editor)
    migration.create_groups(state_apps, schema_editor)
    before = {name: perms_of(name) for name in migration.GROUPS}
    # when it runs again, then nothing changes
    migration.create_groups(state_apps, schema_editor)
    assert {name: perms_of(name) for name in migration.GROUPS} == before
    # when it is reversed, then the groups are gone; when re-applied, they are back as they were
    migration.remove_groups(state_apps, schema_editor)
    assert not Group.objects.filter(name__in=migration.GROUPS).exists()
    migration.create_groups(state_apps, schema_editor)
    assert {name: perms_of(name) for name in migration.GROUPS} == before


def test_issued_invoice_cannot_be_deleted_or_changed_even_by_a_superuser(rf, superuser, hub_data):
    # given the invoice admin and an issued invoice
    invoice_admin = admin.site._registry[Invoice]
    request = rf.get("/")
    request.user = superuser
    # then change and delete are refused for it, allowed for a draft
    assert not invoice_admin.has_change_permission(request, hub_data.issued)
    assert not invoice_admin.has_delete_permission(request, hub_data.issued)
    assert invoice_admin.has_change_permission(request, hub_data.draft)
    assert hub_data.issued.issue_date <= dt.date.today()
