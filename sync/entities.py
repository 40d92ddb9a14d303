"""How each canonical entity is read from and written to the hub: the only place the engine meets
hub/invoicing models, always through their services (so every change records its DomainEvent).

Each `Entity` answers: read an object as canonical values; find candidates for an incoming record;
create, update, archive. Values are canonical (refs as object ids), never vendor-shaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from django.db.models import Model, Q
from django.utils import timezone

from hub import requisites
from hub import services as hub_services
from hub.errors import ValidationFailed
from hub.models import Client, Contact, Deal, DealStatus, Product, Stage
from invoicing import services as invoicing_services
from invoicing.models import OPEN_INVOICE_STATUSES, Invoice, Payment, PaymentSource


class Ambiguous(Exception):
    """Several hub objects match an incoming record equally well: a person must choose."""


class Unsupported(Exception):
    """The hub does not take this kind of record from outside (the reason says why)."""


class Entity:
    name: ClassVar[str]
    model: ClassVar[type[Model]]
    fields: ClassVar[tuple[str, ...]]
    # Canonical fields a remote change may write into the hub; None: every mapped field.
    writable: ClassVar[frozenset[str] | None] = None

    def queryset(self):
        return self.model.objects.all()

    def readable(self, queryset):
        """`queryset` loading what `read` needs with the objects (a sweep reads them by the hundred)."""
        return queryset

    def read(self, obj: Any) -> dict[str, Any]:
        return {f: getattr(obj, f) for f in self.fields}

    def match(self, canonical: Mapping[str, Any]) -> Any | None:
        return None

    def create(self, canonical: Mapping[str, Any], *, origin: str, external_key: str = "") -> Any:
        """A new hub object; `external_key` ("<connection>:<external id>") is the record's natural key,
        kept where the hub has a place for it (a payment's external id)."""
        raise Unsupported(f"the hub does not create {self.name} from other systems")

    def update(self, obj: Any, changes: Mapping[str, Any], *, origin: str) -> Any:
        raise Unsupported(f"the hub does not update {self.name} from other systems")

    def archive(self, obj: Any, *, origin: str) -> bool:
        return False

    def pushable(self, obj: Any) -> bool:
        """Whether the object should leave the hub at all (drafts stay home)."""
        return True


def _unique(candidates: Iterable[Any], how: str) -> Any | None:
    found = list(candidates)[:2]
    if len(found) > 1:
        raise Ambiguous(f"several hub records match by {how}: #{found[0].pk}, #{found[1].pk}")
    return found[0] if found else None


class Clients(Entity):
    name = "clients"
    model = Client
    fields = (
        "kind", "name", "legal_name", "inn", "kpp", "ogrn", "foreign_tax_id", "country",
        "email", "phone", "address", "notes",
    )  # fmt: skip

    def queryset(self):
        return Client.objects.filter(merged_into__isnull=True)

    def read(self, obj: Client) -> dict[str, Any]:
        values = super().read(obj)
        values["archived"] = obj.archived_at is not None
        return values

    def match(self, canonical: Mapping[str, Any]) -> Client | None:
        """ExternalRef was tried by the caller; then INN(+KPP) ► e-mail ► normalised phone."""
        live = self.queryset()
        inn = canonical.get("inn")
        if inn:
            by_inn = live.filter(inn=inn)
            if canonical.get("kpp"):
                exact = _unique(by_inn.filter(kpp=canonical["kpp"]), "INN and KPP")
                if exact:
                    return exact
            found = _unique(by_inn, "INN")
            if found:
                return found
        email = canonical.get("email")
        if email:
            found = _unique(live.filter(email__iexact=email), "e-mail")
            if found:
                return found
        phone = canonical.get("phone")
        if phone:
            return _unique(live.filter(phone=phone), "phone")
        return None

    def _data(self, canonical: Mapping[str, Any]) -> dict[str, Any]:
        return {k: ("" if v is None else v) for k, v in canonical.items() if k in self.fields}

    def create(self, canonical: Mapping[str, Any], *, origin: str, external_key: str = "") -> Client:
        data = self._data(canonical)
        data.setdefault("kind", "person" if len(data.get("inn") or "") == 12 else "company")
        client = hub_services.client_create(origin=origin, **data)
        if canonical.get("archived"):
            hub_services.client_archive(client=client, origin=origin)
        return client

    def update(self, obj: Client, changes: Mapping[str, Any], *, origin: str) -> Client:
        data = self._data(changes)
        if data:
            obj = hub_services.client_update(client=obj, origin=origin, **data)
        if changes.get("archived") and obj.archived_at is None:
            obj = hub_services.client_archive(client=obj, origin=origin)
        return obj

    def archive(self, obj: Client, *, origin: str) -> bool:
        if obj.archived_at is not None:
            return False
        hub_services.client_archive(client=obj, origin=origin)
        return True


class Contacts(Entity):
    name = "contacts"
    model = Contact
    fields = ("first_name", "last_name", "middle_name", "position", "email", "phone")

    def read(self, obj: Contact) -> dict[str, Any]:
        values = super().read(obj)
        values["client"] = obj.client_id
        return values

    def match(self, canonical: Mapping[str, Any]) -> Contact | None:
        client = canonical.get("client")
        if not client:
            return None
        mine = Contact.objects.filter(client_id=client)
        if canonical.get("email"):
            found = _unique(mine.filter(email__iexact=canonical["email"]), "e-mail")
            if found:
                return found
        if canonical.get("phone"):
            return _unique(mine.filter(phone=canonical["phone"]), "phone")
        return None

    def _data(self, canonical: Mapping[str, Any]) -> dict[str, Any]:
        data = {k: ("" if v is None else v) for k, v in canonical.items() if k in self.fields}
        if "first_name" in data and not data["first_name"]:
            data["first_name"] = data.get("last_name") or "—"
        return data

    def create(self, canonical: Mapping[str, Any], *, origin: str, external_key: str = "") -> Contact:
        client = Client.objects.filter(pk=canonical.get("client")).first()
        if client is None:
            raise ValidationFailed("A contact needs its client.", fields={"client": ["Required."]})
        data = self._data(canonical)
        data.setdefault("first_name", "—")
        return hub_services.contact_create(client=client, origin=origin, **data)

    def update(self, obj: Contact, changes: Mapping[str, Any], *, origin: str) -> Contact:
        data = self._data(changes)
        if "client" in changes and changes["client"] != obj.client_id:
            data["client"] = Client.objects.get(pk=changes["client"])
        return hub_services.contact_update(contact=obj, origin=origin, **data) if data else obj


class Deals(Entity):
    name = "deals"
    model = Deal
    fields = (
        "title",
        "currency",
        "expected_close_date",
        "lost_reason",
        "utm_source",
        "utm_medium",
        "utm_campaign",
    )

    def readable(self, queryset):
        return queryset.select_related("stage")

    def read(self, obj: Deal) -> dict[str, Any]:
        values = super().read(obj)
        values.update(
            client=obj.client_id,
            stage=obj.stage.code or obj.stage.name,
            status=obj.status,
            amount=obj.amount_total,
        )
        return values

    @staticmethod
    def _stage(value: Any) -> Stage:
        stage = (
            Stage.objects.select_related("pipeline")
            .filter(Q(code=value) | Q(name=value))
            .order_by("id")
            .first()
        )
        if stage is None:
            raise ValidationFailed(f"No hub stage {value!r}: add it to the stage map of this connection.",
                                   fields={"stage": ["Unknown stage."]})  # fmt: skip
        return stage

    @staticmethod
    def _status_stage(status: str, current: Stage | None) -> Stage | None:
        """A won/lost status without a stage moves the deal to its pipeline's won/lost stage."""
        if status not in (DealStatus.WON, DealStatus.LOST):
            return None
        stages = Stage.objects.filter(**({"pipeline": current.pipeline} if current else {}))
        return stages.filter(**({"is_won": True} if status == DealStatus.WON else {"is_lost": True})).first()

    def _lines(self, amount: Any, title: str) -> list[dict[str, Any]]:
        return [
            {
                "description": title or "—",
                "quantity": Decimal(1),
                "unit_price": Decimal(amount),
                "vat_rate": 0,
            }
        ]

    def create(self, canonical: Mapping[str, Any], *, origin: str, external_key: str = "") -> Deal:
        client = Client.objects.filter(pk=canonical.get("client")).first()
        if client is None:
            raise ValidationFailed("A deal needs its client.", fields={"client": ["Required."]})
        data = {k: v for k, v in canonical.items() if k in self.fields and v not in (None, "")}
        if canonical.get("stage"):
            data["stage"] = self._stage(canonical["stage"])
        status_stage = self._status_stage(canonical.get("status") or "", data.get("stage"))
        if status_stage and not (data.get("stage") and (data["stage"].is_won or data["stage"].is_lost)):
            data["stage"] = status_stage
        lines = self._lines(canonical["amount"], data.get("title", "")) if canonical.get("amount") else ()
        return hub_services.deal_create(
            title=data.pop("title", "") or "—", client=client, lines=lines, origin=origin, **data
        )

    def update(self, obj: Deal, changes: Mapping[str, Any], *, origin: str) -> Deal:
        data = {k: v for k, v in changes.items() if k in self.fields}
        if "client" in changes:
            data["client"] = Client.objects.get(pk=changes["client"])
        if changes.get("stage"):
            data["stage"] = self._stage(changes["stage"])
        elif changes.get("status"):
            stage = self._status_stage(changes["status"], obj.stage)
            if stage:
                data["stage"] = stage
        lines = None
        if changes.get("amount") is not None and obj.lines.count() <= 1:
            lines = self._lines(changes["amount"], data.get("title") or obj.title)
        if not data and lines is None:
            return obj
        return hub_services.deal_update(deal=obj, lines=lines, origin=origin, **data)


class Products(Entity):
    name = "products"
    model = Product
    fields = ("sku", "name", "unit", "price", "unit_cost", "vat_rate", "currency")

    def read(self, obj: Product) -> dict[str, Any]:
        values = super().read(obj)
        values["archived"] = not obj.is_active
        return values

    def match(self, canonical: Mapping[str, Any]) -> Product | None:
        return Product.objects.filter(sku=canonical["sku"]).first() if canonical.get("sku") else None

    def create(self, canonical: Mapping[str, Any], *, origin: str, external_key: str = "") -> Product:
        data = {k: v for k, v in canonical.items() if k in self.fields and v not in (None, "")}
        return hub_services.product_create(origin=origin, **data)

    def update(self, obj: Product, changes: Mapping[str, Any], *, origin: str) -> Product:
        data = {k: v for k, v in changes.items() if k in self.fields}
        return hub_services.product_update(product=obj, origin=origin, **data) if data else obj


class Invoices(Entity):
    """Invoices are issued in the hub and pushed to accounting; inbound they are matched (by ref or by
    number) so payments can be allocated, never rewritten: an issued invoice is immutable."""

    name = "invoices"
    model = Invoice
    writable = frozenset()  # read back for matching and payments only; the document never changes
    fields = ("number", "currency", "issue_date", "due_date", "purpose")

    def readable(self, queryset):
        return queryset.prefetch_related("lines")

    def read(self, obj: Invoice) -> dict[str, Any]:
        values = super().read(obj)
        lines = [
            {
                "description": line.description,
                "quantity": line.quantity,
                "unit": line.unit,
                "unit_price": line.unit_price,
                "vat_rate": line.vat_rate,
            }
            for line in obj.lines.all()
        ]
        values.update(
            client=obj.client_id,
            deal=obj.deal_id,
            status=obj.status,
            net_total=obj.amount_net,
            vat_total=obj.vat_amount,
            total=obj.amount_total,
            paid_total=obj.amount_paid,
            amount_due=obj.amount_total - obj.amount_paid,
            lines=lines,
        )
        return values

    def match(self, canonical: Mapping[str, Any]) -> Invoice | None:
        number = canonical.get("number")
        return _unique(Invoice.objects.filter(number=number), "number") if number else None

    def create(self, canonical: Mapping[str, Any], *, origin: str, external_key: str = "") -> Invoice:
        raise Unsupported(
            f"invoice {canonical.get('number') or ''} exists only in the other system; the hub issues "
            "invoices itself and does not import foreign ones"
        )

    def update(self, obj: Invoice, changes: Mapping[str, Any], *, origin: str) -> Invoice:
        return obj  # status and amounts follow payments; the document itself never changes

    def pushable(self, obj: Invoice) -> bool:
        return obj.number is not None and obj.status != "draft"


class Payments(Entity):
    name = "payments"
    model = Payment
    writable = frozenset()
    fields = ("amount", "currency", "received_at", "payer_name", "payer_inn", "purpose")

    def read(self, obj: Payment) -> dict[str, Any]:
        values = super().read(obj)
        values["client"] = obj.client_id
        values["reference"] = obj.external_id
        first = obj.allocations.order_by("id").first()
        values["invoice"] = first.invoice_id if first else None
        return values

    def create(self, canonical: Mapping[str, Any], *, origin: str, external_key: str = "") -> Payment:
        invoice = Invoice.objects.filter(pk=canonical.get("invoice")).select_related("client").first()
        client = Client.objects.filter(pk=canonical.get("client")).first() or (
            invoice.client if invoice else None
        )
        amount = canonical.get("amount")
        received_at = canonical.get("received_at") or timezone.now()
        if isinstance(received_at, dt.date) and not isinstance(received_at, dt.datetime):
            received_at = dt.datetime.combine(received_at, dt.time(12), tzinfo=dt.UTC)
        allocations = []
        if invoice is not None and invoice.status in OPEN_INVOICE_STATUSES:
            due = invoice.amount_total - invoice.amount_paid
            allocations = [{"invoice": invoice, "amount": min(due, amount)}] if amount and due > 0 else []
        return invoicing_services.payment_record(
            amount=amount,
            received_at=received_at,
            currency=canonical.get("currency") or (invoice.currency if invoice else None),
            client=client,
            source=PaymentSource.SYNC,
            external_id=external_key,
            payer_name=canonical.get("payer_name") or "",
            payer_inn=requisites.normalize_inn(canonical.get("payer_inn") or "")
            if canonical.get("payer_inn")
            else "",
            purpose=canonical.get("purpose") or canonical.get("reference") or "",
            allocations=allocations,
            origin=origin,
        )

    def update(self, obj: Payment, changes: Mapping[str, Any], *, origin: str) -> Payment:
        return obj  # a recorded payment is money received: corrections are made by a person, not a sync


ENTITIES: dict[str, Entity] = {
    e.name: e for e in (Clients(), Contacts(), Deals(), Products(), Invoices(), Payments())
}
# The order a run walks streams in: references point backwards (a deal's client is synced before it).
ORDER = ("clients", "contacts", "products", "deals", "invoices", "payments")
