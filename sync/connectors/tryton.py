"""Tryton (trytond 8.x): the accounting side, over JSON-RPC.

Parties ⇄ clients, customer invoices pushed (raw create, then validated and posted), payments read back
from the payment move lines of customer invoices. No webhooks: the engine polls.

Wire: `POST {base}/{database}/rpc/` with `{"id", "method": "model.<name>.<method>", "params": [..., context]}`
(`sync.connectors._tryton_rpc` does the tagged types). Auth: a session from `common.db.login`, sent as
`Authorization: Session base64(login:uid:key)` and renewed once when the server answers 401 (expired);
`options.auth = "basic"` sends HTTP Basic on every call instead (a password check per request).

Change feed: `search_read` with `["OR", [["write_date", ">=", T]], [["create_date", ">=", T]]]`
(`write_date` stays empty until the first edit), ordered by `last_modified_at` (trytond's
`COALESCE(write_date, create_date)`) then id, paged by keyset on that pair so a record edited during the
run can neither be skipped nor loop.

Vendor facts the mappings rely on (checked against a real trytond 8.2, see tests/fixtures/tryton/):
- the INN is a `party.identifier` of type `ru_vat` (Tryton files the Russian INN, `ru_inn` in
  python-stdnum, under its VAT alias and validates the checksum); OGRN is type `ru_ogrn`. Records carry
  `identifiers: [{"type", "code"}]`, read with the path `identifiers[type=ru_vat].code`;
- e-mail and phone are contact mechanisms, carried as `contact_mechanisms: [{"type", "value"}]`;
- addresses are carried as `addresses: [{"street", "postal_code", "city", ...}]`; the hub's one-line
  address goes to the first address's `street`;
- dotted reads (`currency.code`) come back as `"currency.": {"code": ...}` and are flattened here to
  `currency_code`;
- a payment is a move line of a customer invoice (`invoice_payment`), its amount `credit - debit` is
  exposed as `paid_amount` and its reference is the payment move's description (`move_description`).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import logging
import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from sync.connectors import _tryton_rpc as wire
from sync.connectors import register
from sync.connectors.base import (
    AuthError,
    ConnectionConfig,
    Connector,
    MappingSpec,
    PermanentError,
    RecordError,
    RemoteRecord,
)

logger = logging.getLogger("sync.connectors.tryton")

PAGE_SIZE = 100

PARTY_FIELDS = ["name", "code", "active", "create_date", "write_date", "last_modified_at", "lang"]
INVOICE_FIELDS = [
    "number",
    "reference",
    "description",
    "type",
    "state",
    "party",
    "invoice_address",
    "invoice_date",
    "payment_term_date",
    "currency.code",
    "untaxed_amount",
    "tax_amount",
    "total_amount",
    "amount_to_pay",
    "company",
    "create_date",
    "write_date",
    "last_modified_at",
]
PAYMENT_FIELDS = [
    "invoice_payment",
    "invoice_payment.number",
    "invoice_payment.reference",
    "party",
    "party.name",
    "debit",
    "credit",
    "date",
    "description",
    "move.number",
    "move.description",
    "currency.code",
    "create_date",
    "write_date",
    "last_modified_at",
]

INVOICE_STATES = {
    "draft": "draft",
    "validated": "draft",
    "posted": "issued",
    "paid": "paid",
    "cancelled": "void",
}
ISSUED_STATUSES = {"issued", "sent", "partially_paid", "paid", "overdue"}
INN_TYPE = "ru_vat"
OGRN_TYPE = "ru_ogrn"

M = MappingSpec
DEFAULT_MAPPINGS = (
    # parties ⇄ clients
    M("clients", "name", "name"),
    M("clients", f"identifiers[type={INN_TYPE}].code", "inn"),
    M("clients", f"identifiers[type={OGRN_TYPE}].code", "ogrn"),
    M("clients", "contact_mechanisms[type=email].value", "email"),
    M("clients", "contact_mechanisms[type=phone].value", "phone", transform="phone"),
    M("clients", "addresses.0.street", "address"),
    M("clients", "active", "archived", transform="boolean", params={"negate": True}),
    # customer invoices: the hub issues them (owner hub), Tryton numbers and settles them
    M("invoices", "reference", "number", owner="hub"),
    M(
        "invoices",
        "party",
        "client",
        transform="lookup",
        params={"entity": "clients", "as": "int"},
        owner="hub",
    ),
    M("invoices", "invoice_date", "issue_date", transform="date", owner="hub"),
    M("invoices", "payment_term_date", "due_date", transform="date", direction="in"),
    M("invoices", "currency_code", "currency", owner="hub"),
    M("invoices", "description", "purpose", owner="hub"),
    M("invoices", "lines", "lines", direction="out", owner="hub"),
    M("invoices", "state", "status", transform="enum", params={"map": INVOICE_STATES}, direction="in"),
    M("invoices", "untaxed_amount", "net_total", transform="decimal", direction="in"),
    M("invoices", "tax_amount", "vat_total", transform="decimal", direction="in"),
    M("invoices", "total_amount", "total", transform="decimal", direction="in"),
    M("invoices", "amount_to_pay", "amount_due", transform="decimal", direction="in"),
    # payments: read only (the accountant records them in Tryton)
    M(
        "payments",
        "invoice_payment",
        "invoice",
        transform="lookup",
        params={"entity": "invoices"},
        direction="in",
    ),
    M("payments", "party", "client", transform="lookup", params={"entity": "clients"}, direction="in"),
    M("payments", "paid_amount", "amount", transform="decimal", direction="in"),
    M("payments", "currency_code", "currency", direction="in"),
    M("payments", "date", "received_at", transform="datetime", direction="in"),
    M("payments", "move_description", "reference", direction="in"),
    M("payments", "party_name", "payer_name", direction="in"),
    M("payments", "invoice_payment_reference", "purpose", direction="in"),
)


def _flatten(row: Mapping[str, Any]) -> dict[str, Any]:
    """`{"currency.": {"code": "EUR", "id": 1}}` ► `{"currency_code": "EUR"}` (paths cannot hold a dot)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("."):
            for sub, subvalue in (value or {}).items():  # None: the many2one is empty
                if sub != "id":
                    out[f"{key[:-1]}_{sub}"] = subvalue
        else:
            out[key] = value
    return out


def _changed_since(since: dt.datetime) -> list[Any]:
    return ["OR", [["write_date", ">=", since]], [["create_date", ">=", since]]]


@register
class TrytonConnector(Connector):
    system = "tryton"
    title = "Tryton"
    role = "accounting"
    streams = ("clients", "invoices", "payments")
    push_streams = ("clients", "invoices")
    credential_keys = ("database", "username", "password")
    required_credentials = ("database", "username", "password")
    default_mappings = DEFAULT_MAPPINGS
    default_rate_limit = 20.0  # a self-hosted server: be polite, not throttled
    signs_webhooks = False

    def __init__(self, config: ConnectionConfig, *, http: Any | None = None):
        if http is None:
            from sync.http import HttpClient

            http = HttpClient.for_connection(
                config,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                rate_limit=config.rate_limit_per_second or self.default_rate_limit,
            )
        super().__init__(config, http=http)
        self._ids = itertools.count(1)
        self._session: str | None = None
        self._session_lock = threading.Lock()
        self._context: dict[str, Any] | None = None
        self._cache: dict[tuple[str, Any], Any] = {}

    # --- transport -------------------------------------------------------------------------------
    @property
    def page_size(self) -> int:
        return int(self.config.options.get("page_size", PAGE_SIZE))

    def _credentials(self) -> dict[str, str]:
        creds = self.config.credentials.load()
        missing = [k for k in self.required_credentials if not creds.get(k)]
        if missing:
            raise AuthError(f"Tryton connection lacks {', '.join(missing)}: set them in admin")
        return creds

    def _post(self, method: str, params: list[Any], *, auth: str | None, writing: bool = False) -> Any:
        database = self._credentials()["database"]
        headers = {"Authorization": auth} if auth else {}
        response = self.http.request(
            "POST",
            f"/{database}/rpc/",
            content=wire.dumps({"id": next(self._ids), "method": method, "params": params}),
            headers=headers,
        )
        if not response.content:
            raise PermanentError(f"Tryton {method}: empty reply (HTTP {response.status_code})")
        try:
            body = wire.loads(response.content)
        except ValueError:
            from sync.http import error_excerpt

            raise PermanentError(
                f"Tryton {method}: expected JSON-RPC, got {error_excerpt(response)}",
                status=response.status_code,
            ) from None
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise PermanentError(f"Tryton {method}: not a JSON-RPC reply: {str(body)[:200]}")
        if body.get("error"):
            wire.raise_for_error(method, body["error"], writing=writing)
        return body.get("result")

    def _login(self) -> str:
        creds = self._credentials()
        if self.config.options.get("auth") == "basic":
            token = base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
            return f"Basic {token}"
        try:
            result = self._post(
                "common.db.login", [creds["username"], {"password": creds["password"]}, "en"], auth=None
            )
        except AuthError as exc:
            raise AuthError(
                f"Tryton refused the login of {creds['username']!r} to database {creds['database']!r}: "
                f"check the username and password in admin ({exc})",
                status=exc.status,
            ) from None
        try:
            uid, key = result[0], result[1]
        except (TypeError, IndexError, KeyError):
            raise PermanentError(f"Tryton common.db.login: unexpected reply {str(result)[:200]}") from None
        token = base64.b64encode(f"{creds['username']}:{uid}:{key}".encode()).decode()
        return f"Session {token}"

    def _auth(self, *, renew: bool = False, stale: str | None = None) -> str:
        with self._session_lock:
            if self._session is None or (renew and self._session == stale):
                self._session = self._login()
            return self._session

    def rpc(self, method: str, *params: Any, writing: bool = False) -> Any:
        """Call `method` with `params` (the caller passes the context last); renew an expired session once."""
        auth = self._auth()
        try:
            return self._post(method, list(params), auth=auth, writing=writing)
        except AuthError:
            if self.config.options.get("auth") == "basic":
                raise
            auth = self._auth(renew=True, stale=auth)
            return self._post(method, list(params), auth=auth, writing=writing)

    def context(self) -> dict[str, Any]:
        """The user's context (company, language), read once per connector instance."""
        if self._context is None:
            prefs = self.rpc("model.res.user.get_preferences", True, {})
            if not isinstance(prefs, dict):
                raise PermanentError(f"Tryton get_preferences: unexpected reply {str(prefs)[:200]}")
            company = self.config.options.get("company") or prefs.get("company")
            self._context = {"company": company, "language": prefs.get("language") or "en"}
        return dict(self._context)

    def model(
        self,
        name: str,
        method: str,
        *args: Any,
        writing: bool = False,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        return self.rpc(
            f"model.{name}.{method}", *args, {**self.context(), **(context or {})}, writing=writing
        )

    # --- reading ---------------------------------------------------------------------------------
    def check(self) -> None:
        ctx = self.context()
        if not ctx.get("company"):
            raise PermanentError(
                "the Tryton user has no current company: set one in Tryton (User ► Preferences) "
                "or pass options.company"
            )

    def _pages(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        since: dt.datetime | None,
        context: Mapping[str, Any] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Rows of `model` matching `domain` (and changed at or after `since`), oldest change first,
        in pages, keyset-paged on (last_modified_at, id)."""
        base = list(domain)
        if since is not None:
            base.append(_changed_since(since))
        order = [["last_modified_at", "ASC"], ["id", "ASC"]]
        wanted = sorted(set(fields) | {"last_modified_at", "create_date", "write_date"})
        last: tuple[dt.datetime, int] | None = None
        while True:
            page_domain = list(base)
            if last is not None:
                page_domain.append(
                    [
                        "OR",
                        [["last_modified_at", ">", last[0]]],
                        [["last_modified_at", "=", last[0]], ["id", ">", last[1]]],
                    ]
                )
            rows = self.model(
                model, "search_read", page_domain, 0, self.page_size, order, wanted, context=context
            )
            if not isinstance(rows, list):
                raise PermanentError(f"Tryton {model}.search_read: expected a list, got {str(rows)[:200]}")
            if not rows:
                return
            yield rows
            tail = rows[-1]
            position = (tail.get("last_modified_at") or tail.get("create_date"), tail.get("id"))
            if position[0] is None or position[1] is None:
                raise PermanentError(f"Tryton {model}: a row without id or change time: {str(tail)[:200]}")
            if last is not None and position <= last:
                raise PermanentError(f"Tryton {model}: the page after {last} repeats it; stopping")
            last = position  # type: ignore[assignment]
            if len(rows) < self.page_size:
                return

    def _record(self, stream: str, row: Mapping[str, Any]) -> RemoteRecord:
        changed = row.get("last_modified_at") or row.get("write_date") or row.get("create_date")
        data = wire.plain(_flatten(row))
        return RemoteRecord(
            stream=stream,
            external_id=str(row["id"]),
            data=data,
            updated_at=changed if isinstance(changed, dt.datetime) else None,
            version=str(changed.timestamp()) if isinstance(changed, dt.datetime) else "",
            deleted=False,
        )

    def _parties_detail(self, rows: list[dict[str, Any]]) -> None:
        """Embed identifiers, contact mechanisms and addresses (one search_read each per page)."""
        ids = [row["id"] for row in rows]
        related = {
            "identifiers": ("party.identifier", ["party", "type", "code"]),
            "contact_mechanisms": ("party.contact_mechanism", ["party", "type", "value", "active"]),
            "addresses": (
                "party.address",
                ["party", "street", "postal_code", "city", "country.code", "active", "sequence"],
            ),
        }
        by_party: dict[str, dict[int, list[dict[str, Any]]]] = {}
        for key, (model, fields) in related.items():
            found = self.model(
                model,
                "search_read",
                [["party", "in", ids]],
                0,
                None,
                [["sequence", "ASC"], ["id", "ASC"]],
                fields,
            )
            grouped: dict[int, list[dict[str, Any]]] = {}
            for item in found or []:
                item = _flatten(item)
                party = item.pop("party", None)
                item.pop("sequence", None)
                grouped.setdefault(party, []).append(item)
            by_party[key] = grouped
        for row in rows:
            for key, grouped in by_party.items():
                row[key] = grouped.get(row["id"], [])

    def _payments_detail(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            credit, debit = row.get("credit") or Decimal(0), row.get("debit") or Decimal(0)
            row["paid_amount"] = credit - debit

    def _stream_query(self, stream: str) -> tuple[str, list[Any], list[str], dict[str, Any]]:
        if stream == "clients":
            # archived parties too (they are the tombstones of clients). Through the context: an
            # `active` clause stops excluding archived records once the domain holds other clauses.
            return "party.party", [], PARTY_FIELDS, {"active_test": False}
        if stream == "invoices":
            return "account.invoice", [["type", "=", "out"]], INVOICE_FIELDS, {}
        if stream == "payments":
            return (
                "account.move.line",
                [["invoice_payment.type", "=", "out"], ["move.state", "=", "posted"]],
                PAYMENT_FIELDS,
                {},
            )
        raise PermanentError(f"Tryton has no stream {stream!r}")

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        model, domain, fields, context = self._stream_query(stream)
        for rows in self._pages(model, domain, fields, since=since, context=context):
            if stream == "clients":
                self._parties_detail(rows)
            elif stream == "payments":
                self._payments_detail(rows)
            for row in rows:
                yield self._record(stream, row)

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        model, domain, fields, context = self._stream_query(stream)
        try:
            record_id = int(external_id)
        except ValueError:
            return None
        rows = self.model(
            model, "search_read", [*domain, ["id", "=", record_id]], 0, 1, None, fields, context=context
        )
        if not rows:
            return None
        if stream == "clients":
            self._parties_detail(rows)
        elif stream == "payments":
            self._payments_detail(rows)
        return self._record(stream, rows[0])

    # --- writing ---------------------------------------------------------------------------------
    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        if stream == "clients":
            return self._upsert_party(payload, external_id)
        if stream == "invoices":
            return self._upsert_invoice(payload, external_id)
        raise PermanentError(f"Tryton cannot write {stream}")

    def _upsert_party(self, payload: Mapping[str, Any], external_id: str | None) -> str:
        values = {
            k: v for k, v in payload.items() if k not in ("identifiers", "contact_mechanisms", "addresses")
        }
        identifiers = [i for i in payload.get("identifiers") or [] if i.get("code")]
        mechanisms = [m for m in payload.get("contact_mechanisms") or [] if m.get("value")]
        addresses = [a for a in payload.get("addresses") or [] if any(v for v in a.values())]
        if external_id is None:
            if not values.get("name"):
                raise RecordError("a Tryton party needs a name")
            values["identifiers"] = [["create", [dict(i) for i in identifiers]]] if identifiers else []
            values["contact_mechanisms"] = [["create", [dict(m) for m in mechanisms]]] if mechanisms else []
            # an invoice needs an invoice address: every party gets one, even an empty one
            values["addresses"] = [["create", [dict(a) for a in addresses] or [{}]]]
            values = {k: v for k, v in values.items() if v != []}
            created = self.model("party.party", "create", [values], writing=True)
            return str(created[0])
        party = int(external_id)
        writes: dict[str, Any] = dict(values)
        if identifiers:
            writes["identifiers"] = self._x2many_by_type(
                "party.identifier", party, identifiers, key="type", value="code"
            )
        if mechanisms:
            writes["contact_mechanisms"] = self._x2many_by_type(
                "party.contact_mechanism", party, mechanisms, key="type", value="value"
            )
        if addresses:
            current = self.model(
                "party.address", "search", [["party", "=", party]], 0, 1, [["sequence", "ASC"]]
            )
            writes["addresses"] = (
                [["write", current[:1], dict(addresses[0])]]
                if current
                else [["create", [dict(addresses[0])]]]
            )
        writes = {k: v for k, v in writes.items() if v != []}
        if writes:
            self.model("party.party", "write", [party], writes, writing=True)
        return str(party)

    def _x2many_by_type(
        self, model: str, party: int, items: list[Mapping[str, Any]], *, key: str, value: str
    ) -> list[Any]:
        """One-to-many actions that set the value of each given type (update in place, else create)."""
        existing = self.model(model, "search_read", [["party", "=", party]], 0, None, None, [key, value])
        by_type = {row[key]: row for row in existing or []}
        actions: list[Any] = []
        creates = []
        for item in items:
            row = by_type.get(item.get(key))
            if row is None:
                creates.append(dict(item))
            elif row.get(value) != item.get(value):
                actions.append(["write", [row["id"]], {value: item.get(value)}])
        if creates:
            actions.append(["create", creates])
        return actions

    def _lookup(self, model: str, domain: list[Any], what: str) -> int:
        key = (model, repr(domain))
        if key not in self._cache:
            found = self.model(model, "search", domain, 0, 1, None)
            if not found:
                raise RecordError(f"Tryton has no {what} ({model} {domain}): set it up in Tryton")
            self._cache[key] = found[0]
        return self._cache[key]

    def _invoice_defaults(self, currency_code: str | None) -> dict[str, int]:
        opts = self.config.options
        company = self.context()["company"]
        receivable = opts.get("receivable_account") or self._lookup(
            "account.account",
            [["type.receivable", "=", True], ["closed", "!=", True], ["company", "=", company]],
            "receivable account",
        )
        journal = opts.get("journal") or self._lookup(
            "account.journal", [["type", "=", "revenue"]], "revenue journal"
        )
        if currency_code:
            currency = self._lookup(
                "currency.currency", [["code", "=", currency_code]], f"currency {currency_code}"
            )
        else:
            key = ("company.currency", company)
            if key not in self._cache:
                self._cache[key] = self.model("company.company", "read", [company], ["currency"])[0][
                    "currency"
                ]
            currency = self._cache[key]
        return {"company": company, "account": receivable, "journal": journal, "currency": currency}

    def _revenue_account(self) -> int:
        company = self.context()["company"]
        return self.config.options.get("revenue_account") or self._lookup(
            "account.account",
            [["type.revenue", "=", True], ["closed", "!=", True], ["company", "=", company]],
            "revenue account",
        )

    def _tax_for(self, rate: Any) -> list[int]:
        """The customer tax for a VAT rate in percent (20 ► a Tryton percentage tax of 0.20)."""
        if rate in (None, ""):
            return []
        percent = Decimal(str(rate))
        if not percent:
            return []
        mapped = (self.config.options.get("tax_map") or {}).get(str(percent.normalize()))
        if mapped:
            return [int(mapped)]
        fraction = (percent / 100).quantize(Decimal("0.0001"))
        return [
            self._lookup(
                "account.tax",
                [["type", "=", "percentage"], ["rate", "=", fraction], ["parent", "=", None]],
                f"{percent.normalize()} % tax",
            )
        ]

    def _invoice_lines(self, lines: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        revenue = self._revenue_account()
        out = []
        for line in lines:
            try:
                quantity = float(Decimal(str(line.get("quantity") or 1)))
                price = Decimal(str(line.get("unit_price") or 0))
            except (ArithmeticError, ValueError) as exc:
                raise RecordError(f"invoice line {line!r}: {exc}") from None
            taxes = self._tax_for(line.get("vat_rate"))
            values: dict[str, Any] = {
                "type": "line",
                "description": str(line.get("description") or "")[:1000] or "-",
                "quantity": quantity,
                "unit_price": price,
                "account": revenue,
            }
            if taxes:
                values["taxes"] = [["add", taxes]]
            out.append(values)
        return out

    def _upsert_invoice(self, payload: Mapping[str, Any], external_id: str | None) -> str:
        party = payload.get("party")
        if external_id is not None:
            state = self.model("account.invoice", "read", [int(external_id)], ["state"])[0]["state"]
            if state != "draft":
                # a validated/posted invoice is immutable in Tryton (corrections go through a credit note)
                logger.info("tryton invoice %s is %s: not rewritten", external_id, state)
                return external_id
        if party in (None, ""):
            raise RecordError("the invoice's client is not in Tryton yet (push the client first)")
        party = int(party)
        values: dict[str, Any] = {
            k: v
            for k, v in payload.items()
            if k not in ("lines", "currency_code", "party") and v is not None and not k.endswith("_code")
        }
        values["party"] = party
        if isinstance(values.get("invoice_date"), str):
            values["invoice_date"] = dt.date.fromisoformat(values["invoice_date"][:10])
        lines = self._invoice_lines(payload.get("lines") or [])
        if external_id is None:
            addresses = self.model(
                "party.address", "search", [["party", "=", party]], 0, 1, [["sequence", "ASC"]]
            )
            if not addresses:
                raise RecordError(f"Tryton party {party} has no address; an invoice needs one")
            values.update(self._invoice_defaults(payload.get("currency_code")))
            values.update(type="out", invoice_address=addresses[0])
            values["lines"] = [["create", lines]] if lines else []
            created = self.model("account.invoice", "create", [values], writing=True)
            return str(created[0])
        invoice = int(external_id)
        if lines:
            old = self.model("account.invoice.line", "search", [["invoice", "=", invoice]], 0, None, None)
            values["lines"] = ([["delete", old]] if old else []) + [["create", lines]]
        self.model("account.invoice", "write", [invoice], values, writing=True)
        return external_id

    def after_push(self, stream: str, external_id: str, canonical: Mapping[str, Any]) -> None:
        """An issued hub invoice is validated and posted in Tryton (which numbers it); a voided draft is
        cancelled."""
        if stream != "invoices":
            return
        invoice = int(external_id)
        state = self.model("account.invoice", "read", [invoice], ["state"])[0]["state"]
        status = canonical.get("status")
        if status in ISSUED_STATUSES and state in ("draft", "validated"):
            if state == "draft":
                self.model("account.invoice", "validate_invoice", [invoice], writing=True)
            self.model("account.invoice", "post", [invoice], writing=True)
        elif status == "void" and state in ("draft", "validated"):
            self.model("account.invoice", "cancel", [invoice], writing=True)

    def delete(self, stream: str, external_id: str) -> None:
        if stream == "clients":
            self.model("party.party", "write", [int(external_id)], {"active": False}, writing=True)
            return
        if stream == "invoices":
            invoice = int(external_id)
            state = self.model("account.invoice", "read", [invoice], ["state"])[0]["state"]
            if state in ("draft", "validated"):
                self.model("account.invoice", "cancel", [invoice], writing=True)
                return
            if state == "cancelled":
                return
            raise RecordError(f"Tryton invoice {external_id} is {state}: credit it in Tryton instead")
        raise PermanentError(f"Tryton cannot archive {stream}")

    # --- accountant's actions (tests, demos) -----------------------------------------------------
    def pay_invoice(
        self,
        external_id: str,
        amount: Decimal,
        date: dt.date,
        *,
        description: str = "",
        payment_method: int | None = None,
    ) -> None:
        """Pay a posted customer invoice the way the Pay button does (the `account.invoice.pay` wizard:
        create ► start ► choice [► ask: partial] ► delete). Used by tests to play the accountant."""
        invoice = int(external_id)
        ctx = self.context()
        method = payment_method or self.config.options.get("payment_method")
        if not method:
            method = self._lookup("account.invoice.payment.method", [], "invoice payment method")
        wizard_ctx = dict(ctx, active_model="account.invoice", active_id=invoice, active_ids=[invoice])
        session, start_state, _end = self.rpc("wizard.account.invoice.pay.create", ctx)
        try:
            view = self.rpc(
                "wizard.account.invoice.pay.execute", session, {}, start_state, wizard_ctx, writing=True
            )
            start = {k: v for k, v in view["view"]["defaults"].items() if "." not in k}
            start.update(
                amount=Decimal(str(amount)), date=date, payment_method=method, description=description
            )
            result = self.rpc(
                "wizard.account.invoice.pay.execute",
                session,
                {"start": start},
                "choice",
                wizard_ctx,
                writing=True,
            )
            if result.get("view"):  # less than the amount to pay: Tryton asks what to do with the rest
                ask = {k: v for k, v in result["view"]["defaults"].items() if "." not in k}
                ask["type"] = "partial"
                self.rpc(
                    "wizard.account.invoice.pay.execute",
                    session,
                    {"start": start, "ask": ask},
                    "pay",
                    wizard_ctx,
                    writing=True,
                )
        finally:
            self.rpc("wizard.account.invoice.pay.delete", session, ctx)
