"""Writes to the CRM core. Each function validates, writes, and records a ``DomainEvent`` in one transaction.

Services take keyword-only arguments; ``origin`` says where the change came from (``api``, ``ui``,
``admin``, ``sync:<connection>``), so the sync engine never pushes a change back to where it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone

from . import requisites
from .errors import Conflict, ValidationFailed
from .events import event_record
from .models import (
    Channel,
    Client,
    ClientKind,
    Company,
    Contact,
    Deal,
    DealLine,
    DealStatus,
    Pipeline,
    Product,
    Stage,
    VatMode,
)
from .pricing import document_totals, line_totals

Errors = dict[str, list[str]]


# --- helpers ------------------------------------------------------------------------------------


def clean_fields(
    data: Mapping[str, Any], cleaners: Mapping[str, Callable[[Any], Any]]
) -> tuple[dict[str, Any], Errors]:
    """`data` with each field that has a cleaner cleaned; a cleaner's ValueError becomes that field's
    error (the others are still cleaned, so every error is reported at once)."""
    cleaned: dict[str, Any] = dict(data)
    errors: Errors = {}
    for field, cleaner in cleaners.items():
        if field in cleaned:
            try:
                cleaned[field] = cleaner(cleaned[field])
            except ValueError as exc:
                errors.setdefault(field, []).append(str(exc))
    return cleaned, errors


def require_fields(data: Mapping[str, Any], fields: Iterable[str], errors: Errors) -> None:
    """Add "This field is required." to `errors` for each of `fields` missing or blank in `data`."""
    for field in fields:
        value = data.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors.setdefault(field, []).append("This field is required.")


def apply_changes(instance: Model, data: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, list[Any]]:
    """Set the allowed fields that differ; return ``{field: [before, after]}``."""
    changes: dict[str, list[Any]] = {}
    for field in allowed:
        if field not in data:
            continue
        new = data[field]
        attr = field
        old = getattr(instance, attr)
        old_cmp = getattr(old, "pk", old)
        new_cmp = getattr(new, "pk", new)
        if old_cmp != new_cmp:
            changes[field] = [old_cmp, new_cmp]
            setattr(instance, attr, new)
    return changes


def _save_checked(instance: Model, *, unique_message: str) -> None:
    """Save, turning a constraint violation into a clear error instead of a 500."""
    try:
        with transaction.atomic():
            instance.full_clean(
                validate_unique=False, validate_constraints=False, exclude=_skip_clean(instance)
            )
            instance.save()
    except IntegrityError as exc:
        raise Conflict(unique_message, code="constraint_violation") from exc
    except Exception as exc:
        from django.core.exceptions import ValidationError as DjangoValidationError

        if isinstance(exc, DjangoValidationError):
            raise ValidationFailed.from_fields(
                {k: [str(m) for m in v] for k, v in exc.message_dict.items()}
            ) from exc
        raise


def _skip_clean(instance: Model) -> list[str]:
    # Foreign keys were resolved by the caller; re-fetching them in full_clean costs a query each.
    return [f.name for f in instance._meta.concrete_fields if f.is_relation]


def _decimal(value: Any, field: str, errors: Errors) -> Decimal | None:
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        errors.setdefault(field, []).append("Must be a decimal number.")
        return None
    if not result.is_finite():
        errors.setdefault(field, []).append("Must be a finite number.")
        return None
    return result


# --- own company --------------------------------------------------------------------------------


def company_get_default() -> Company:
    company = Company.objects.filter(is_default=True).first() or Company.objects.order_by("id").first()
    if company is None:
        raise ValidationFailed(
            "No own company is configured: add your company's requisites in the admin first.",
            fields={"company": ["No own company is configured."]},
        )
    return company


COMPANY_CLEANERS = {
    "inn": requisites.normalize_inn,
    "kpp": requisites.normalize_kpp,
    "ogrn": requisites.normalize_ogrn,
    "default_currency": requisites.normalize_currency,
}


def company_create(*, actor=None, origin: str = "admin", **data: Any) -> Company:
    cleaned, errors = clean_fields(data, COMPANY_CLEANERS)
    require_fields(cleaned, ["legal_name"], errors)
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        company = Company(**cleaned)
        if not Company.objects.exists():
            company.is_default = True
        _save_checked(company, unique_message="Only one company can be the default.")
        event_record(type="company.created", instance=company, origin=origin, actor=actor)
    return company


# --- channels and products ------------------------------------------------------------------------


def channel_create(*, name: str, code: str, actor=None, origin: str = "admin") -> Channel:
    errors: Errors = {}
    require_fields({"name": name, "code": code}, ["name", "code"], errors)
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        channel = Channel(name=name.strip(), code=code.strip())
        _save_checked(channel, unique_message="A channel with this name or code exists.")
        event_record(type="channel.created", instance=channel, origin=origin, actor=actor)
    return channel


PRODUCT_FIELDS = ("sku", "name", "unit", "price", "unit_cost", "currency", "vat_rate", "is_active")


def _product_errors(data: Mapping[str, Any]) -> Errors:
    errors: Errors = {}
    for field in ("price", "unit_cost"):
        if field in data and data[field] is not None and Decimal(data[field]) < 0:
            errors.setdefault(field, []).append("Must not be negative.")
    if "vat_rate" in data and not (Decimal("0") <= Decimal(data["vat_rate"]) < Decimal("100")):
        errors.setdefault("vat_rate", []).append("Must be between 0 and 100.")
    return errors


def product_create(*, actor=None, origin: str = "api", **data: Any) -> Product:
    cleaned, errors = clean_fields(data, {"currency": requisites.normalize_currency})
    require_fields(cleaned, ["sku", "name"], errors)
    errors.update(_product_errors(cleaned))
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        product = Product(**{k: v for k, v in cleaned.items() if k in PRODUCT_FIELDS})
        _save_checked(product, unique_message=f"A product with SKU {cleaned['sku']!r} exists.")
        event_record(type="product.created", instance=product, origin=origin, actor=actor)
    return product


def product_update(*, product: Product, actor=None, origin: str = "api", **data: Any) -> Product:
    cleaned, errors = clean_fields(data, {"currency": requisites.normalize_currency})
    errors.update(_product_errors(cleaned))
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        changes = apply_changes(product, cleaned, PRODUCT_FIELDS)
        if changes:
            _save_checked(product, unique_message="A product with this SKU exists.")
            event_record(
                type="product.updated",
                instance=product,
                payload={"changes": changes},
                origin=origin,
                actor=actor,
            )
    return product


# --- pipelines and stages -------------------------------------------------------------------------


def pipeline_create(
    *,
    name: str,
    stages: Iterable[Mapping[str, Any]] = (),
    is_default: bool = False,
    actor=None,
    origin: str = "admin",
) -> Pipeline:
    with transaction.atomic():
        if is_default:
            Pipeline.objects.filter(is_default=True).update(is_default=False)
        pipeline = Pipeline(name=name, is_default=is_default or not Pipeline.objects.exists())
        _save_checked(pipeline, unique_message=f"A pipeline named {name!r} exists.")
        for order, stage in enumerate(stages, start=1):
            stage_create(
                pipeline=pipeline,
                order=stage.get("order", order),
                actor=actor,
                origin=origin,
                **{k: v for k, v in stage.items() if k != "order"},
            )
        event_record(type="pipeline.created", instance=pipeline, origin=origin, actor=actor)
    return pipeline


def stage_create(
    *,
    pipeline: Pipeline,
    name: str,
    code: str,
    order: int = 0,
    is_won: bool = False,
    is_lost: bool = False,
    probability: int = 0,
    actor=None,
    origin: str = "admin",
) -> Stage:
    errors: Errors = {}
    if is_won and is_lost:
        errors["is_won"] = ["A stage cannot be both won and lost."]
    if not 0 <= int(probability) <= 100:
        errors["probability"] = ["Must be between 0 and 100."]
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        stage = Stage(
            pipeline=pipeline,
            name=name,
            code=code,
            order=order,
            is_won=is_won,
            is_lost=is_lost,
            probability=probability,
        )
        _save_checked(stage, unique_message=f"Pipeline {pipeline.name!r} already has a stage {code!r}.")
        event_record(type="stage.created", instance=stage, origin=origin, actor=actor)
    return stage


# --- clients and contacts -------------------------------------------------------------------------

CLIENT_FIELDS = (
    "kind",
    "name",
    "legal_name",
    "inn",
    "kpp",
    "ogrn",
    "foreign_tax_id",
    "country",
    "email",
    "phone",
    "address",
    "manager",
    "channel",
    "vat_mode",
    "notes",
)


def client_cleaners(country: str | None) -> dict[str, Callable[[Any], Any]]:
    """The cleaners of a client's requisites (phones read in `country`'s numbering plan)."""
    region = country or None
    return {
        "inn": requisites.normalize_inn,
        "kpp": requisites.normalize_kpp,
        "ogrn": requisites.normalize_ogrn,
        "email": requisites.normalize_email,
        "phone": lambda v: requisites.normalize_phone(v, region=region),
        "country": lambda v: (v or "RU").strip().upper(),
    }


def client_rules(client: Client, errors: Errors) -> None:
    """The rules across a client's fields (a person has no KPP, ...), added to `errors`."""
    if client.kind == ClientKind.PERSON and client.kpp:
        errors.setdefault("kpp", []).append("A person has no KPP.")
    if client.kpp and not client.inn:
        errors.setdefault("kpp", []).append("KPP needs an INN.")
    if client.inn and len(client.inn) == 10 and client.kind == ClientKind.PERSON:
        errors.setdefault("inn", []).append("A person's INN has 12 digits.")
    if len(client.country) != 2 or not client.country.isalpha():
        errors.setdefault("country", []).append("Country must be an ISO 3166 two-letter code.")


def _client_duplicate_check(client: Client) -> None:
    if not client.inn:
        return
    clash = (
        Client.objects.filter(inn=client.inn, kpp=client.kpp, merged_into__isnull=True)
        .exclude(pk=client.pk)
        .values_list("pk", flat=True)
        .first()
    )
    if clash:
        raise Conflict(
            f"Client #{clash} already has INN {client.inn}"
            + (f" / KPP {client.kpp}" if client.kpp else "")
            + ".",
            fields={"inn": [f"Already used by client #{clash}."]},
            code="duplicate",
        )


def client_create(*, actor=None, origin: str = "api", **data: Any) -> Client:
    cleaned, errors = clean_fields(data, client_cleaners(data.get("country")))
    require_fields(cleaned, ["name"], errors)
    client = Client(**{k: v for k, v in cleaned.items() if k in CLIENT_FIELDS})
    if not errors:
        client_rules(client, errors)
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        _client_duplicate_check(client)
        _save_checked(client, unique_message="A client with this INN/KPP exists.")
        event_record(
            type="client.created",
            instance=client,
            payload={"name": client.name, "inn": client.inn},
            origin=origin,
            actor=actor,
        )
    return client


def client_update(*, client: Client, actor=None, origin: str = "api", **data: Any) -> Client:
    cleaned, errors = clean_fields(data, client_cleaners(data.get("country", client.country)))
    if "name" in cleaned:
        require_fields(cleaned, ["name"], errors)
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        changes = apply_changes(client, cleaned, CLIENT_FIELDS)
        client_rules(client, errors)
        if errors:
            raise ValidationFailed.from_fields(errors)
        if changes:
            if "inn" in changes or "kpp" in changes:
                _client_duplicate_check(client)
            _save_checked(client, unique_message="A client with this INN/KPP exists.")
            event_record(
                type="client.updated",
                instance=client,
                payload={"changes": changes},
                origin=origin,
                actor=actor,
            )
    return client


def client_archive(*, client: Client, actor=None, origin: str = "api") -> Client:
    with transaction.atomic():
        updated = Client.objects.filter(pk=client.pk, archived_at__isnull=True).update(
            archived_at=timezone.now(), updated_at=timezone.now()
        )
        client.refresh_from_db()
        if updated:
            event_record(type="client.archived", instance=client, origin=origin, actor=actor)
    return client


def client_merge(*, source: Client, target: Client, actor=None, origin: str = "admin") -> Client:
    """Move everything of ``source`` to ``target``; ``source`` stays as an archived pointer."""
    if source.pk == target.pk:
        raise ValidationFailed("A client cannot be merged into itself.", fields={"target": ["Same client."]})
    if target.merged_into_id:
        raise ValidationFailed("The target was itself merged away.", fields={"target": ["Already merged."]})
    from invoicing.models import (
        Invoice,
        Payment,
    )  # invoicing depends on hub; a local import keeps hub free of it

    with transaction.atomic():
        now = timezone.now()
        moved = {
            "contacts": Contact.objects.filter(client=source).update(
                client=target, is_primary=False, updated_at=now
            ),
            "deals": Deal.objects.filter(client=source).update(client=target, updated_at=now),
            "invoices": Invoice.objects.filter(client=source).update(client=target, updated_at=now),
            "payments": Payment.objects.filter(client=source).update(client=target, updated_at=now),
        }
        Client.objects.filter(merged_into=source).update(merged_into=target)
        Client.objects.filter(pk=source.pk).update(
            merged_into=target, archived_at=source.archived_at or now, updated_at=now
        )
        source.refresh_from_db()
        event_record(
            type="client.merged",
            instance=source,
            payload={"into": target.pk, "moved": moved},
            origin=origin,
            actor=actor,
        )
    return target


CONTACT_FIELDS = ("last_name", "first_name", "middle_name", "position", "email", "phone", "is_primary")


def _contact_cleaners(client: Client) -> dict[str, Callable[[Any], Any]]:
    return {
        "email": requisites.normalize_email,
        "phone": lambda v: requisites.normalize_phone(v, region=client.country or None),
    }


def contact_create(*, client: Client, actor=None, origin: str = "api", **data: Any) -> Contact:
    cleaned, errors = clean_fields(data, _contact_cleaners(client))
    require_fields(cleaned, ["first_name"], errors)
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        if cleaned.get("is_primary"):
            Contact.objects.filter(client=client, is_primary=True).update(is_primary=False)
        contact = Contact(client=client, **{k: v for k, v in cleaned.items() if k in CONTACT_FIELDS})
        _save_checked(contact, unique_message="The client has another primary contact.")
        event_record(
            type="contact.created",
            instance=contact,
            payload={"client": client.pk},
            origin=origin,
            actor=actor,
        )
    return contact


def contact_update(*, contact: Contact, actor=None, origin: str = "api", **data: Any) -> Contact:
    client = data.pop("client", None) or contact.client
    cleaned, errors = clean_fields(data, _contact_cleaners(client))
    if "first_name" in cleaned:
        require_fields(cleaned, ["first_name"], errors)
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        changes = apply_changes(contact, {**cleaned, "client": client}, (*CONTACT_FIELDS, "client"))
        if changes:
            if contact.is_primary:
                Contact.objects.filter(client=contact.client, is_primary=True).exclude(pk=contact.pk).update(
                    is_primary=False
                )
            _save_checked(contact, unique_message="The client has another primary contact.")
            event_record(
                type="contact.updated",
                instance=contact,
                payload={"changes": changes},
                origin=origin,
                actor=actor,
            )
    return contact


# --- deals ----------------------------------------------------------------------------------------

DEAL_FIELDS = (
    "title",
    "client",
    "company",
    "pipeline",
    "stage",
    "manager",
    "channel",
    "currency",
    "vat_mode",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "expected_close_date",
    "lost_reason",
)


def deal_vat_mode(*, company: Company, client: Client) -> str:
    """The company's VAT mode decides, unless it charges VAT and the client asks for another way."""
    if company.vat_mode == VatMode.NONE:
        return VatMode.NONE
    return client.vat_mode or company.vat_mode


def build_deal_lines(lines: Iterable[Mapping[str, Any]], *, vat_mode: str) -> tuple[list[DealLine], Errors]:
    """Unsaved lines (of a deal, or copied by an invoice) from their dicts, amounts computed under
    `vat_mode`; errors keyed `lines[i].field`."""
    errors: Errors = {}
    built: list[DealLine] = []
    product_ids = {
        line.get("product") if not isinstance(line.get("product"), Product) else line["product"].pk
        for line in lines
        if line.get("product")
    }
    products = Product.objects.in_bulk([p for p in product_ids if p is not None])
    for i, raw in enumerate(lines):
        prefix = f"lines[{i}]."
        product = raw.get("product")
        if product is not None and not isinstance(product, Product):
            product = products.get(product)
            if product is None:
                errors.setdefault(prefix + "product", []).append("No such product.")
                continue
        quantity = _decimal(raw.get("quantity", 1), prefix + "quantity", errors)
        price_in = raw.get("unit_price", product.price if product else None)
        if price_in is None:
            errors.setdefault(prefix + "unit_price", []).append("This field is required without a product.")
            continue
        unit_price = _decimal(price_in, prefix + "unit_price", errors)
        discount = _decimal(raw.get("discount_pct", 0), prefix + "discount_pct", errors)
        vat_rate = _decimal(
            raw.get("vat_rate", product.vat_rate if product else 0), prefix + "vat_rate", errors
        )
        unit_cost = _decimal(
            raw.get("unit_cost", product.unit_cost if product else 0), prefix + "unit_cost", errors
        )
        description = (raw.get("description") or (product.name if product else "")).strip()
        if not description:
            errors.setdefault(prefix + "description", []).append("This field is required without a product.")
        if None in (quantity, unit_price, discount, vat_rate, unit_cost):
            continue
        if quantity <= 0:
            errors.setdefault(prefix + "quantity", []).append("Must be greater than zero.")
        if unit_price < 0:
            errors.setdefault(prefix + "unit_price", []).append("Must not be negative.")
        if unit_cost < 0:
            errors.setdefault(prefix + "unit_cost", []).append("Must not be negative.")
        if not Decimal("0") <= discount <= Decimal("100"):
            errors.setdefault(prefix + "discount_pct", []).append("Must be between 0 and 100.")
        if not Decimal("0") <= vat_rate < Decimal("100"):
            errors.setdefault(prefix + "vat_rate", []).append("Must be between 0 and 100.")
        if errors:
            continue
        totals = line_totals(
            quantity=quantity,
            unit_price=unit_price,
            discount_pct=discount,
            vat_rate=vat_rate,
            unit_cost=unit_cost,
            vat_mode=vat_mode,
        )
        built.append(
            DealLine(
                position=i + 1,
                product=product,
                description=description[:500],
                unit=raw.get("unit") or (product.unit if product else "шт"),
                quantity=quantity,
                unit_price=unit_price,
                discount_pct=discount,
                vat_rate=vat_rate,
                unit_cost=unit_cost,
                amount_net=totals.amount_net,
                vat_amount=totals.vat_amount,
                amount_total=totals.amount_total,
                cost_total=totals.cost_total,
            )
        )
    return built, errors


def _replace_lines(deal: Deal, lines: list[DealLine]) -> None:
    deal.lines.all().delete()
    for line in lines:
        line.deal = deal
    DealLine.objects.bulk_create(lines)
    totals = document_totals(
        line_totals(
            quantity=ln.quantity,
            unit_price=ln.unit_price,
            discount_pct=ln.discount_pct,
            vat_rate=ln.vat_rate,
            unit_cost=ln.unit_cost,
            vat_mode=deal.vat_mode,
        )
        for ln in lines
    )
    deal.amount_net, deal.vat_amount = totals.amount_net, totals.vat_amount
    deal.amount_total, deal.cost_total = totals.amount_total, totals.cost_total


def _stage_status(deal: Deal, stage: Stage) -> dict[str, list[Any]]:
    """Keep status and won/lost timestamps in step with the stage."""
    now = timezone.now()
    new_status = DealStatus.WON if stage.is_won else DealStatus.LOST if stage.is_lost else DealStatus.OPEN
    changes: dict[str, list[Any]] = {}
    if deal.status != new_status:
        changes["status"] = [deal.status, new_status]
        deal.status = new_status
    deal.won_at = (deal.won_at or now) if new_status == DealStatus.WON else None
    deal.lost_at = (deal.lost_at or now) if new_status == DealStatus.LOST else None
    return changes


def _clean_currency(data: dict[str, Any], errors: Errors) -> None:
    if data.get("currency"):
        try:
            data["currency"] = requisites.normalize_currency(data["currency"])
        except ValueError as exc:
            errors.setdefault("currency", []).append(str(exc))


def _check_deal_refs(deal: Deal, errors: Errors) -> None:
    if deal.stage_id and deal.pipeline_id and deal.stage.pipeline_id != deal.pipeline_id:
        errors.setdefault("stage", []).append("The stage belongs to another pipeline.")
    if deal.client_id and deal.client.merged_into_id:
        errors.setdefault("client", []).append(
            f"The client was merged into client #{deal.client.merged_into_id}."
        )


def deal_create(
    *,
    title: str,
    client: Client,
    lines: Iterable[Mapping[str, Any]] = (),
    actor=None,
    origin: str = "api",
    **data: Any,
) -> Deal:
    errors: Errors = {}
    require_fields({"title": title}, ["title"], errors)
    _clean_currency(data, errors)
    company = data.pop("company", None) or company_get_default()
    pipeline = data.pop("pipeline", None)
    stage = data.pop("stage", None)
    if stage is not None and pipeline is None:
        pipeline = stage.pipeline
    pipeline = (
        pipeline
        or Pipeline.objects.filter(is_default=True).first()
        or Pipeline.objects.order_by("id").first()
    )
    if pipeline is None:
        raise ValidationFailed(
            "No pipeline exists: create one in the admin first.", fields={"pipeline": ["Required."]}
        )
    stage = stage or pipeline.stages.order_by("order", "id").first()
    if stage is None:
        raise ValidationFailed(f"Pipeline {pipeline.name!r} has no stages.", fields={"stage": ["Required."]})
    deal = Deal(
        title=(title or "").strip(),
        client=client,
        company=company,
        pipeline=pipeline,
        stage=stage,
        manager=data.pop("manager", None) or client.manager,
        channel=data.pop("channel", None) or client.channel,
        currency=data.pop("currency", None) or company.default_currency,
        vat_mode=data.pop("vat_mode", None) or deal_vat_mode(company=company, client=client),
        **{k: v for k, v in data.items() if k in DEAL_FIELDS},
    )
    lines = list(lines)
    built, line_errors = build_deal_lines(lines, vat_mode=deal.vat_mode)
    errors.update(line_errors)
    _check_deal_refs(deal, errors)
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        _stage_status(deal, stage)
        _save_checked(deal, unique_message="The deal breaks a database rule.")
        if built:
            _replace_lines(deal, built)
            deal.save(update_fields=["amount_net", "vat_amount", "amount_total", "cost_total", "updated_at"])
        event_record(
            type="deal.created", instance=deal, payload=_deal_payload(deal), origin=origin, actor=actor
        )
        if deal.status != DealStatus.OPEN:
            event_record(
                type=f"deal.{deal.status}",
                instance=deal,
                payload=_deal_payload(deal),
                origin=origin,
                actor=actor,
            )
    return deal


def _deal_payload(deal: Deal) -> dict[str, Any]:
    return {
        "title": deal.title,
        "client": deal.client_id,
        "stage": deal.stage_id,
        "stage_code": deal.stage.code,
        "pipeline": deal.pipeline_id,
        "status": deal.status,
        "manager": deal.manager_id,
        "amount_total": deal.amount_total,
        "currency": deal.currency,
    }


def deal_update(
    *,
    deal: Deal,
    lines: Iterable[Mapping[str, Any]] | None = None,
    expected_updated_at=None,
    actor=None,
    origin: str = "api",
    **data: Any,
) -> Deal:
    """Change fields, replace lines, or move the stage. ``expected_updated_at`` refuses stale writes."""
    errors: Errors = {}
    if "title" in data:
        require_fields(data, ["title"], errors)
    _clean_currency(data, errors)
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        locked = Deal.objects.select_for_update().select_related("stage", "client").get(pk=deal.pk)
        if expected_updated_at is not None and locked.updated_at != expected_updated_at:
            raise Conflict("The deal was changed by someone else; reload it and try again.", code="stale")
        if data.get("stage") is not None and "pipeline" not in data:
            data["pipeline"] = data["stage"].pipeline
        old_stage = locked.stage
        changes = apply_changes(locked, data, DEAL_FIELDS)
        _check_deal_refs(locked, errors)
        built = None
        if lines is not None:
            built, line_errors = build_deal_lines(list(lines), vat_mode=locked.vat_mode)
            errors.update(line_errors)
        elif "vat_mode" in changes:
            built, line_errors = build_deal_lines(
                [
                    {
                        "product": ln.product,
                        "description": ln.description,
                        "unit": ln.unit,
                        "quantity": ln.quantity,
                        "unit_price": ln.unit_price,
                        "discount_pct": ln.discount_pct,
                        "vat_rate": ln.vat_rate,
                        "unit_cost": ln.unit_cost,
                    }
                    for ln in locked.lines.select_related("product")
                ],
                vat_mode=locked.vat_mode,
            )
            errors.update(line_errors)
        if errors:
            raise ValidationFailed.from_fields(errors)
        if "stage" in changes:
            changes.update(_stage_status(locked, locked.stage))
        if built is not None:
            before = locked.amount_total
            _replace_lines(locked, built)
            changes["lines"] = [None, len(built)]
            if before != locked.amount_total:
                changes["amount_total"] = [before, locked.amount_total]
        if not changes:
            return locked
        _save_checked(locked, unique_message="The deal breaks a database rule.")
        payload = {**_deal_payload(locked), "changes": changes}
        event_record(type="deal.updated", instance=locked, payload=payload, origin=origin, actor=actor)
        if "stage" in changes:
            event_record(
                type="deal.stage_changed",
                instance=locked,
                payload={**payload, "from_stage": old_stage.pk, "from_stage_code": old_stage.code},
                origin=origin,
                actor=actor,
            )
        if "status" in changes and locked.status != DealStatus.OPEN:
            event_record(
                type=f"deal.{locked.status}", instance=locked, payload=payload, origin=origin, actor=actor
            )
    return locked
