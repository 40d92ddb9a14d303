"""Pages of the manager UI for the CRM core: home, clients, deals and the board.

Thin views: selectors decide what the user may see (``hub.selectors``), services make the changes
(``hub.services``), and other apps add their panels through ``hub.ui_panels``.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from . import selectors, services
from .errors import ApplicationError
from .models import Channel, ClientKind, Contact, DealStatus, Pipeline, Stage

PAGE_SIZE = 50


def _int(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**62 else None


def _managers():
    return get_user_model().objects.filter(groups__name=selectors.MANAGER).order_by("username").distinct()


# --- home ----------------------------------------------------------------------------------------


@login_required
@require_GET
def home(request):
    recent = selectors.deal_list(user=request.user, status=DealStatus.OPEN)[:8]
    return render(request, "ui/hub/home.html", {"nav": "home", "recent_deals": recent})


# --- clients -------------------------------------------------------------------------------------


class ClientFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("Search"), required=False, max_length=100)
    manager = forms.ModelChoiceField(label=gettext_lazy("Manager"), queryset=None, required=False)
    channel = forms.ModelChoiceField(label=gettext_lazy("Channel"), queryset=None, required=False)
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"), choices=[("", "—"), *ClientKind.choices], required=False
    )
    archived = forms.BooleanField(label=gettext_lazy("Archived"), required=False)

    def __init__(self, *args, access: selectors.Access, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel"].queryset = Channel.objects.order_by("name")
        if access.sees_all_crm:
            self.fields["manager"].queryset = _managers()
        else:
            del self.fields["manager"]


@login_required
@require_GET
def clients(request):
    access = selectors.user_access(request.user)
    form = ClientFilterForm(request.GET or None, access=access)
    data = form.cleaned_data if form.is_valid() else {}
    qs = selectors.client_list(
        user=request.user,
        search=data.get("q") or "",
        manager=data["manager"].pk if data.get("manager") else None,
        channel=data["channel"].pk if data.get("channel") else None,
        kind=data.get("kind") or "",
        archived=bool(data.get("archived")),
    )
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"nav": "clients", "form": form, "page": page, "query": query.urlencode()}
    template = "ui/hub/clients_rows.html" if request.htmx and request.htmx.target == "client-rows" else None
    return render(request, template or "ui/hub/clients.html", context)


@login_required
@require_GET
def client_detail(request, pk: int):
    try:
        client = selectors.client_detail(user=request.user, pk=pk)
    except selectors.Client.DoesNotExist:
        raise Http404 from None
    contacts = Contact.objects.filter(client=client).order_by("-is_primary", "last_name", "id")
    deals = selectors.deal_list(user=request.user, client=client.pk)[:50]
    return render(
        request,
        "ui/hub/client_detail.html",
        {"nav": "clients", "client": client, "contacts": contacts, "deals": deals},
    )


# --- deals ---------------------------------------------------------------------------------------


class DealFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("Search"), required=False, max_length=100)
    status = forms.ChoiceField(
        label=gettext_lazy("Status"), choices=[("", "—"), *DealStatus.choices], required=False
    )
    stage = forms.ModelChoiceField(label=gettext_lazy("Stage"), queryset=None, required=False)
    manager = forms.ModelChoiceField(label=gettext_lazy("Manager"), queryset=None, required=False)
    channel = forms.ModelChoiceField(label=gettext_lazy("Channel"), queryset=None, required=False)
    won_from = forms.DateField(label=gettext_lazy("Won from"), required=False)
    won_to = forms.DateField(label=gettext_lazy("Won to"), required=False)

    def __init__(self, *args, access: selectors.Access, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = Stage.objects.select_related("pipeline").order_by("pipeline", "order")
        self.fields["channel"].queryset = Channel.objects.order_by("name")
        if access.sees_all_crm:
            self.fields["manager"].queryset = _managers()
        else:
            del self.fields["manager"]

    def clean(self):
        data = super().clean()
        if data.get("won_from") and data.get("won_to") and data["won_from"] > data["won_to"]:
            self.add_error("won_to", _("The end of the period is before its start."))
        return data


@login_required
@require_GET
def deals(request):
    """Every deal the user may see; the dashboards drill down here with the same filters."""
    access = selectors.user_access(request.user)
    form = DealFilterForm(request.GET or None, access=access)
    data = form.cleaned_data if form.is_valid() else {}
    qs = selectors.deal_list(
        user=request.user,
        search=data.get("q") or "",
        status=data.get("status") or "",
        stage=data["stage"].pk if data.get("stage") else None,
        manager=data["manager"].pk if data.get("manager") else None,
    )
    if data.get("channel"):
        qs = qs.filter(channel=data["channel"])
    if data.get("won_from"):
        qs = qs.filter(won_at__date__gte=data["won_from"])
    if data.get("won_to"):
        qs = qs.filter(won_at__date__lte=data["won_to"])
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "ui/hub/deals.html",
        {"nav": "deals", "form": form, "page": page, "query": query.urlencode()},
    )


def _board_context(request, pipeline: Pipeline) -> dict:
    columns = selectors.deal_board(user=request.user, pipeline=pipeline)
    # Each card's keyboard "move to" list is the same for a column: rendered once per column, not per card.
    for col in columns:
        col.options_html = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (c.stage.pk, mark_safe(" selected") if c.stage.pk == col.stage.pk else "", c.stage.name)
                for c in columns
            ),
        )
    return {
        "nav": "board",
        "pipeline": pipeline,
        "pipelines": Pipeline.objects.order_by("name"),
        "columns": columns,
    }


def _pipeline(request) -> Pipeline:
    pk = _int(request.GET.get("pipeline") or request.POST.get("pipeline"))
    qs = Pipeline.objects.all()
    if pk:
        return get_object_or_404(qs, pk=pk)
    pipeline = qs.filter(is_default=True).first() or qs.order_by("id").first()
    if pipeline is None:
        raise Http404
    return pipeline


@login_required
@require_GET
def board(request):
    return render(request, "ui/hub/board.html", _board_context(request, _pipeline(request)))


@login_required
@require_POST
def deal_move(request, pk: int):
    """Move a deal to another stage from the board (drag-and-drop or the keyboard form).

    The card carries the deal's ``updated_at`` as it was drawn; ``deal_update`` refuses the move if the
    deal changed since (someone else moved or edited it), and the board is redrawn with the reason.
    """
    deal = get_object_or_404(selectors.deals_visible(user=request.user).select_related("pipeline"), pk=pk)
    stage = get_object_or_404(
        Stage.objects.filter(pipeline_id=deal.pipeline_id), pk=_int(request.POST.get("stage"))
    )
    seen = parse_datetime(request.POST.get("updated_at") or "")
    if seen is None:
        messages.error(request, _("The move was refused: the board is out of date. It has been reloaded."))
    else:
        try:
            services.deal_update(
                deal=deal, stage=stage, expected_updated_at=seen, actor=request.user, origin="ui"
            )
        except ApplicationError as exc:
            if exc.code == "stale":
                messages.error(
                    request,
                    _("“%(deal)s” was changed by someone else meanwhile; the move was refused. "
                      "The board now shows its current stage.") % {"deal": deal.title},
                )  # fmt: skip
            else:
                messages.error(request, _("The move was refused: %(reason)s") % {"reason": exc.message})
        else:
            messages.success(
                request, _("“%(deal)s” moved to %(stage)s.") % {"deal": deal.title, "stage": stage.name}
            )
    if request.htmx:
        return render(request, "ui/hub/board_body.html", _board_context(request, deal.pipeline))
    return redirect(f"{reverse('ui-board')}?pipeline={deal.pipeline_id}")


@login_required
@require_GET
def deal_detail(request, pk: int):
    try:
        deal = selectors.deal_detail(user=request.user, pk=pk)
    except selectors.Deal.DoesNotExist:
        raise Http404 from None
    margin = deal.amount_net - deal.cost_total
    margin_pct = (margin * 100 / deal.amount_net) if deal.amount_net else None
    return render(
        request,
        "ui/hub/deal_detail.html",
        {
            "nav": "deals",
            "deal": deal,
            "lines": list(deal.lines.all()),
            "margin": margin,
            "margin_pct": margin_pct,
            "history": selectors.deal_history(deal=deal),
            "client_visible": selectors.clients_visible(user=request.user).filter(pk=deal.client_id).exists(),
        },
    )
