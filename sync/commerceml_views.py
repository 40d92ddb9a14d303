"""The endpoint 1C polls for the CommerceML exchange (`/sync/1c_exchange/<connection name>/`).

One view, dispatched on `mode` like the 1C-Bitrix `1c_exchange.php` it stands in for. Replies are
plain text (`success…`, `failure\\n<reason>`, `zip=no\\nfile_limit=…`) except `mode=query`, which
returns the orders XML. Authentication: HTTP Basic at `checkauth`, which hands out a signed cookie
(valid `SESSION_MAX_AGE`); later requests present the cookie (or `sessid`, or Basic again).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from sync import commerceml
from sync.commerceml_exchange import (
    ExchangeSettings,
    ExchangeStore,
    credentials_for,
    file_import,
    file_receive,
    orders_acknowledge,
    orders_export,
)

logger = logging.getLogger(__name__)

COOKIE_NAME = "hub_1c_exchange"
SESSION_MAX_AGE = 3600
_SALT = "sync.commerceml.session"
_TYPES = ("sale", "catalog")


def _text(body: str, exchange: ExchangeSettings | None = None, status: int = 200) -> HttpResponse:
    encoding = exchange.encoding if exchange else "utf-8"
    return HttpResponse(
        body.encode(encoding, errors="replace"), status=status, content_type=f"text/plain; charset={encoding}"
    )


def _basic_ok(request: HttpRequest, exchange: ExchangeSettings) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    for encoding in ("utf-8", "windows-1251"):  # 1C sends Cyrillic user names in either
        try:
            user, _, password = decoded.decode(encoding).partition(":")
        except UnicodeDecodeError:
            continue
        if hmac.compare_digest(user.encode(), exchange.username.encode()) and hmac.compare_digest(
            password.encode(), exchange.password.encode()
        ):
            return True
    return False


def _session_ok(request: HttpRequest, name: str) -> bool:
    token = request.COOKIES.get(COOKIE_NAME) or request.GET.get("sessid", "")
    if not token:
        return False
    try:
        return signing.loads(token, salt=_SALT, max_age=SESSION_MAX_AGE) == name
    except signing.BadSignature:
        return False


@csrf_exempt
def exchange(request: HttpRequest, name: str) -> HttpResponse:
    """`?type=sale|catalog&mode=checkauth|init|query|success|file|import[&filename=…]`."""
    exchange_settings = credentials_for(name)
    if exchange_settings is None:
        return _text(commerceml.failure(f"unknown exchange {name!r}"), status=404)
    kind, mode = request.GET.get("type", ""), request.GET.get("mode", "")
    if kind not in _TYPES:
        return _text(commerceml.failure(f"unknown type {kind!r}; expected sale"), exchange_settings)

    if mode == "checkauth":
        if not _basic_ok(request, exchange_settings):
            logger.warning(
                "1c exchange %s: refused credentials from %s", name, request.META.get("REMOTE_ADDR")
            )
            return _text(commerceml.failure("wrong user name or password"), exchange_settings)
        token = signing.dumps(name, salt=_SALT)
        return _text(commerceml.checkauth_reply(COOKIE_NAME, token), exchange_settings)

    if not (_session_ok(request, name) or _basic_ok(request, exchange_settings)):
        return _text(commerceml.failure("not authorized; call mode=checkauth first"), exchange_settings)

    try:
        return _dispatch(request, name, kind, mode, exchange_settings)
    except commerceml.CommerceMLError as exc:
        logger.warning("1c exchange %s: %s failed: %s", name, mode, exc)
        return _text(commerceml.failure(str(exc)), exchange_settings)


def _dispatch(
    request: HttpRequest, name: str, kind: str, mode: str, exchange: ExchangeSettings
) -> HttpResponse:
    if mode == "init":
        ExchangeStore(name).start()
        return _text(commerceml.init_reply(file_limit=exchange.file_limit), exchange)
    if kind != "sale":
        return _text(commerceml.failure("only the sale (orders) exchange is supported"), exchange)
    if mode == "query":
        body = orders_export(name=name, exchange=exchange)
        return HttpResponse(body, content_type=f"application/xml; charset={exchange.encoding}")
    if mode == "success":
        orders_acknowledge(name=name)
        return _text(commerceml.success(), exchange)
    if mode in ("file", "import"):
        filename = request.GET.get("filename", "")
        if not filename:
            return _text(commerceml.failure("no filename"), exchange)
        if mode == "file":
            if request.method != "POST":
                return _text(commerceml.failure("mode=file expects a POST body"), exchange)
            file_receive(name=name, filename=filename, chunk=request.body, exchange=exchange, apply=True)
            return _text(commerceml.success(), exchange)
        result = file_import(name=name, filename=filename, exchange=exchange)
        logger.info(
            "1c exchange %s: %s: %d documents, %d paid, %d voided, %d unknown",
            name,
            filename,
            result.documents,
            result.paid,
            result.voided,
            result.unknown,
        )
        return _text(commerceml.success(), exchange)
    return _text(commerceml.failure(f"unknown mode {mode!r}"), exchange)
