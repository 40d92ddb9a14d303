"""The canonical records the engine reads and writes, entity by entity.

A mapper turns a vendor record into a dict whose keys come from here; the synchronizer turns that dict
into service calls on the hub/invoicing models. Reference fields (`client`, `deal`, `invoice`) hold a
`Ref` from the `lookup` transform: the external id of another record of the same connection, which the
binder resolves through `ExternalRef`.

Types: "str", "email", "phone", "inn", "kpp", "ogrn", "country", "currency", "decimal", "date",
"datetime", "bool", "int", "ref:<entity>", "choice:<a>|<b>".
"""

from __future__ import annotations

ENTITIES: dict[str, dict[str, str]] = {
    "clients": {
        "kind": "choice:company|person",
        "name": "str",
        "legal_name": "str",
        "inn": "inn",
        "kpp": "kpp",
        "ogrn": "ogrn",
        "foreign_tax_id": "str",
        "country": "country",
        "email": "email",
        "phone": "phone",
        "address": "str",
        "notes": "str",
        "archived": "bool",
    },
    "contacts": {
        "client": "ref:clients",
        "first_name": "str",
        "last_name": "str",
        "middle_name": "str",
        "position": "str",
        "email": "email",
        "phone": "phone",
        "archived": "bool",
    },
    "deals": {
        "title": "str",
        "client": "ref:clients",
        "stage": "str",  # a hub Stage name (an enum map turns vendor stage codes into it)
        "status": "choice:open|won|lost",
        "amount": "decimal",
        "currency": "currency",
        "expected_close_date": "date",
        "lost_reason": "str",
        "utm_source": "str",
        "utm_medium": "str",
        "utm_campaign": "str",
        "archived": "bool",
    },
    "products": {
        "sku": "str",
        "name": "str",
        "unit": "str",
        "price": "decimal",
        "unit_cost": "decimal",
        "vat_rate": "decimal",
        "currency": "currency",
        "archived": "bool",
    },
    "invoices": {
        "number": "str",
        "client": "ref:clients",
        "deal": "ref:deals",
        "status": "choice:draft|issued|sent|partially_paid|paid|overdue|void",
        "currency": "currency",
        "issue_date": "date",
        "due_date": "date",
        "net_total": "decimal",
        "vat_total": "decimal",
        "total": "decimal",
        "paid_total": "decimal",
        "amount_due": "decimal",
        "purpose": "str",
        "lines": "list",  # [{"description", "quantity", "unit_price", "vat_rate", "unit"}]
    },
    "payments": {
        "invoice": "ref:invoices",
        "client": "ref:clients",
        "amount": "decimal",
        "currency": "currency",
        "received_at": "datetime",
        "reference": "str",
        "payer_name": "str",
        "payer_inn": "inn",
        "purpose": "str",
    },
}


def field_type(entity: str, name: str) -> str:
    """The canonical type of `entity.name`; KeyError when the field does not exist."""
    return ENTITIES[entity][name]
