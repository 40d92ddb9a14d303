"""Reads of the CRM core for the manager UI, with who-may-see-what applied here, not in templates.

Roles are the groups the data migration creates: a *Manager* sees the clients they manage and the deals
they own (or that belong to their clients); an *Accountant* reads every client and deal and works the
money pages; an *Administrator* (or a superuser) sees everything. A user in no group sees nothing.
A row outside the caller's scope is simply absent from the queryset, so a view's ``get_object_or_404``
answers 404 for it exactly as for an id that does not exist: no existence leak.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from .models import Client, Deal, DealStatus, DomainEvent, Pipeline, Stage

MANAGER, ACCOUNTANT, ADMINISTRATOR = "Manager", "Accountant", "Administrator"


@dataclass(frozen=True)
class Access:
    """What one user may see; computed once per request (one query for the groups)."""

    user_id: int | None
    is_admin: bool
    is_accountant: bool
    is_manager: bool

    @property
    def sees_all_crm(self) -> bool:
        return self.is_admin or self.is_accountant

    @property
    def sees_money(self) -> bool:
        """The money pages: invoice lists, payments and their review queue, receivables."""
        return self.is_admin or self.is_accountant

    @property
    def is_staff_role(self) -> bool:
        return self.is_admin or self.is_accountant or self.is_manager


def user_access(user) -> Access:
    """The user's roles, cached on the user object for the rest of the request."""
    cached = getattr(user, "_hub_access", None)
    if cached is not None:
        return cached
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        access = Access(None, False, False, False)
    else:
        groups = set() if user.is_superuser else set(user.groups.values_list("name", flat=True))
        access = Access(
            user.pk,
            is_admin=user.is_superuser or ADMINISTRATOR in groups,
            is_accountant=ACCOUNTANT in groups,
            is_manager=MANAGER in groups,
        )
    user._hub_access = access
    return access


# --- clients -------------------------------------------------------------------------------------


def clients_visible(*, user) -> QuerySet[Client]:
    """Live (not merged) clients the user may open."""
    access = user_access(user)
    qs = Client.objects.filter(merged_into__isnull=True)
    if access.sees_all_crm:
        return qs
    if access.is_manager:
        return qs.filter(manager_id=access.user_id)
    return qs.none()


def client_list(
    *,
    user,
    search: str = "",
    manager: int | None = None,
    channel: int | None = None,
    kind: str = "",
    archived: bool = False,
) -> QuerySet[Client]:
    """The clients list: search by name, INN, e-mail or phone; filter by manager, channel, kind."""
    qs = clients_visible(user=user).select_related("manager", "channel")
    qs = qs.filter(archived_at__isnull=not archived)
    search = search.strip()
    if search:
        q = Q(name__icontains=search) | Q(legal_name__icontains=search) | Q(email__icontains=search)
        digits = "".join(ch for ch in search if ch.isdigit())
        if digits and len(digits) >= 4:
            q |= Q(inn__startswith=digits) | Q(phone__contains=digits)
        qs = qs.filter(q)
    if manager:
        qs = qs.filter(manager_id=manager)
    if channel:
        qs = qs.filter(channel_id=channel)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("name", "id")


def client_detail(*, user, pk: int) -> Client:
    """One client with its manager and channel; ``Client.DoesNotExist`` when out of scope."""
    return clients_visible(user=user).select_related("manager", "channel").get(pk=pk)


# --- deals ---------------------------------------------------------------------------------------


def deals_visible(*, user) -> QuerySet[Deal]:
    access = user_access(user)
    qs = Deal.objects.all()
    if access.sees_all_crm:
        return qs
    if access.is_manager:
        return qs.filter(Q(manager_id=access.user_id) | Q(client__manager_id=access.user_id))
    return qs.none()


def deal_list(
    *,
    user,
    search: str = "",
    status: str = "",
    stage: int | None = None,
    manager: int | None = None,
    client: int | None = None,
    ids: list[int] | None = None,
) -> QuerySet[Deal]:
    qs = deals_visible(user=user).select_related("client", "stage", "manager")
    if search.strip():
        qs = qs.filter(Q(title__icontains=search.strip()) | Q(client__name__icontains=search.strip()))
    if status:
        qs = qs.filter(status=status)
    if stage:
        qs = qs.filter(stage_id=stage)
    if manager:
        qs = qs.filter(manager_id=manager)
    if client:
        qs = qs.filter(client_id=client)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.order_by("-updated_at", "-id")


def deal_detail(*, user, pk: int) -> Deal:
    return (
        deals_visible(user=user)
        .select_related("client", "stage", "pipeline", "manager", "channel", "company")
        .prefetch_related("lines__product")
        .get(pk=pk)
    )


@dataclass
class BoardColumn:
    stage: Stage
    deals: list[Deal]
    total: int
    options_html: str = ""  # the column's "move to" <option>s, filled by the view


BOARD_CARDS_PER_STAGE = 30


def deal_board(*, user, pipeline: Pipeline) -> list[BoardColumn]:
    """Open deals by stage (won and lost columns show the latest ones), newest first, capped per column."""
    stages = list(pipeline.stages.order_by("order", "id"))
    base = deals_visible(user=user).filter(pipeline=pipeline)
    counts = dict(base.order_by().values_list("stage_id").annotate(n=Count("id")))
    fields = ("id", "title", "stage_id", "status", "amount_total", "currency", "updated_at", "client__name")
    cards = base.select_related("client").only(*fields).order_by("-updated_at", "-id")
    # One bounded query per stage (a pipeline has a handful): never the whole history of won deals.
    by_stage = {s.pk: list(cards.filter(stage=s)[:BOARD_CARDS_PER_STAGE]) for s in stages}
    return [BoardColumn(s, by_stage[s.pk], counts.get(s.pk, 0)) for s in stages]


def deal_history(*, deal: Deal, limit: int = 50) -> list[DomainEvent]:
    """The deal's own events, newest first, with who made them."""
    return list(
        DomainEvent.objects.filter(aggregate_type="hub.deal", aggregate_id=str(deal.pk))
        .select_related("actor")
        .order_by("-id")[:limit]
    )


def deals_open_count(*, user) -> int:
    return deals_visible(user=user).filter(status=DealStatus.OPEN).count()
