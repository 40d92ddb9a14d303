"""1C through the CommerceML 2 site exchange (CONTRACTS.md §2.2): 1C polls the hub.

Unlike the other connectors nothing is fetched over HTTP: 1C ("Обмен с сайтом") calls
`/sync/1c_exchange/<connection name>/` (`sync.commerceml_views`), collects the hub's issued invoices
as CommerceML orders (`mode=query`) and uploads order statuses and payments back (`mode=file` /
`mode=import`). This class gives the connection its place in the registry (`connect onec_commerceml`,
the admin's field mappings) and turns an uploaded CommerceML file into `WebhookEvent`s carrying
whole records, so the engine's inbox can take uploads like any other delivery.

Credentials: `username` and `password` — the pair 1C must present (HTTP Basic at `mode=checkauth`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
from collections.abc import Iterator, Mapping

from sync import commerceml
from sync.connectors import register
from sync.connectors.base import (
    AuthError,
    Connector,
    MappingSpec,
    PermanentError,
    RemoteRecord,
    WebhookEvent,
)

_REQ = "ЗначенияРеквизитов[Наименование={}].Значение"


@register
class OneCCommerceMLConnector(Connector):
    system = "onec_commerceml"
    title = "1C (CommerceML site exchange)"
    role = "accounting"
    streams = ("invoices",)
    push_streams = ()  # the hub does not call 1C: 1C collects orders at mode=query
    credential_keys = ("username", "password")
    required_credentials = ("username", "password")
    default_rate_limit = None
    signs_webhooks = False
    default_mappings = (
        MappingSpec("invoices", "Номер", "number", direction="in"),
        MappingSpec("invoices", "Дата", "issue_date", direction="in", transform="date"),
        MappingSpec("invoices", "Сумма", "total", direction="in", transform="decimal"),
        MappingSpec(
            "invoices",
            _REQ.format(commerceml.REQ_CANCELLED),
            "status",
            direction="in",
            owner="hub",
            transform="enum",
            params={"map": {"true": "void"}, "default": "issued"},
        ),
        MappingSpec("invoices", _REQ.format(commerceml.REQ_NUMBER_1C), "purpose", direction="in"),
    )

    def check(self) -> None:
        """Nothing to reach: 1C calls us. The credentials 1C must present have to be set."""
        creds = self.config.credentials.load()
        missing = [key for key in self.required_credentials if not creds.get(key)]
        if missing:
            raise AuthError(
                f"{self.config.name}: set --credential {'=… --credential '.join(missing)}=… for 1C"
            )

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        """Nothing to pull: what 1C sends arrives through the exchange endpoint."""
        if stream not in self.streams:
            raise PermanentError(f"{self.system} has no stream {stream!r}")
        return iter(())

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        return None  # 1C cannot be asked; its next upload carries the record

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """An upload is authentic when it carries the exchange's HTTP Basic credentials."""
        creds = self.config.credentials.load()
        header = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not creds.get("username"):
            return False
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(user.encode(), creds["username"].encode()) and hmac.compare_digest(
            password.encode(), creds.get("password", "").encode()
        )

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        """An uploaded CommerceML file ► one event per order document, with the whole record."""
        try:
            documents = commerceml.parse_documents(body)
        except commerceml.CommerceMLError as exc:
            raise PermanentError(f"1C CommerceML upload: {exc}") from None
        digest = hashlib.sha256(body).hexdigest()[:16]
        events = []
        for document in documents:
            external_id = document.id or document.number
            record = RemoteRecord(
                stream="invoices",
                external_id=external_id,
                data=document.as_record(),
                deleted=document.flag(commerceml.REQ_DELETED),
            )
            events.append(
                WebhookEvent(
                    event_id=f"{digest}:{external_id}",
                    stream="invoices",
                    external_id=external_id,
                    action="delete" if record.deleted else "upsert",
                    record=record,
                )
            )
        return events
