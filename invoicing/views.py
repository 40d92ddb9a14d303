"""Pages of the manager UI for the money: invoices, payments and the review queue of unmatched ones.

Every write goes through ``invoicing.services`` / ``invoicing.matching``, the same functions the API
and the admin call, with ``origin="ui"``.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from hub.errors import ApplicationError
from hub.selectors import deals_visible, user_access

from . import selectors, services
from .matching import match_confirm, match_reassign
from .models import OPEN_INVOICE_STATUSES, Invoice, InvoiceStatus, PaymentStatus

PAGE_SIZE = 50


def _require_money(user) -> None:
    if not user_access(user).sees_money:
        raise PermissionDenied


def _invoice_or_404(user, pk: int) -> Invoice:
    try:
        return selectors.invoice_detail(user=user, pk=pk)
    except Invoice.DoesNotExist:
        raise Http404 from None


def _error_text(exc: ApplicationError) -> str:
    details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
    return f"{exc.message} {details}".strip() if details and details not in exc.message else exc.message


# --- invoices ------------------------------------------------------------------------------------


class InvoiceFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("Search"), required=False, max_length=100)
    status = forms.ChoiceField(
        label=gettext_lazy("Status"), choices=[("", "—"), *InvoiceStatus.choices], required=False
    )
    overdue = forms.BooleanField(label=gettext_lazy("Overdue only"), required=False)


@login_required
@require_GET
def invoices(request):
    form = InvoiceFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    qs = selectors.invoice_list(
        user=request.user,
        status=data.get("status") or "",
        search=data.get("q") or "",
        overdue=bool(data.get("overdue")),
    )
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "ui/invoicing/invoices.html",
        {"nav": "invoices", "form": form, "page": page, "query": query.urlencode()},
    )


class SendForm(forms.Form):
    to = forms.EmailField(
        label=gettext_lazy("Send to"),
        required=False,
        help_text=gettext_lazy("Empty: the client's e-mail."),
    )


class VoidForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=255)


def _invoice_page(request, invoice: Invoice, *, send_form=None, void_form=None, status=200):
    access = user_access(request.user)
    return render(
        request,
        "ui/invoicing/invoice_detail.html",
        {
            "nav": "invoices",
            "invoice": invoice,
            "can_act": access.sees_money,
            "can_send": access.sees_money and invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID),
            "can_void": access.sees_money
            and invoice.status in OPEN_INVOICE_STATUSES
            and invoice.amount_paid == 0,
            "send_form": send_form or SendForm(),
            "void_form": void_form or VoidForm(),
            "client_visible": selectors.client_is_visible(user=request.user, client_id=invoice.client_id),
        },
        status=status,
    )


@login_required
@require_GET
def invoice_detail(request, pk: int):
    return _invoice_page(request, _invoice_or_404(request.user, pk))


@login_required
@require_GET
@xframe_options_sameorigin
def invoice_preview(request, pk: int):
    """The invoice as it prints, for the page's frame: its own HTML with nothing fetched from outside."""
    from . import pdf
    from .services import invoice_template_for

    invoice = _invoice_or_404(request.user, pk)
    template = invoice.template or invoice_template_for(client=invoice.client)
    printable = pdf.invoice_printable(invoice, template)
    html = printable.html.replace("</head>", f"<style>{printable.css}</style></head>", 1)
    response = HttpResponse(html)
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return response


@login_required
@require_GET
def invoice_pdf(request, pk: int):
    invoice = _invoice_or_404(request.user, pk)
    try:
        data = services.invoice_pdf(invoice=invoice)
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
        return redirect("ui-invoice", pk=pk)
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
    return response


@login_required
@require_POST
def invoice_send(request, pk: int):
    invoice = _invoice_or_404(request.user, pk)
    _require_money(request.user)
    form = SendForm(request.POST)
    if not form.is_valid():
        return _invoice_page(request, invoice, send_form=form, status=400)
    try:
        delivery = services.invoice_send(
            invoice=invoice, to=form.cleaned_data["to"] or None, actor=request.user, origin="ui"
        )
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, _("The invoice is queued for sending to %(to)s.") % {"to": delivery.to})
    return redirect("ui-invoice", pk=pk)


@login_required
@require_POST
def invoice_void(request, pk: int):
    invoice = _invoice_or_404(request.user, pk)
    _require_money(request.user)
    form = VoidForm(request.POST)
    if not form.is_valid():
        return _invoice_page(request, invoice, void_form=form, status=400)
    try:
        services.invoice_void(
            invoice=invoice, reason=form.cleaned_data["reason"], actor=request.user, origin="ui"
        )
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, _("Invoice %(number)s is void.") % {"number": invoice.number})
    return redirect("ui-invoice", pk=pk)


@login_required
@require_POST
def deal_issue_invoice(request, pk: int):
    """The deal page's "Issue invoice": the service behind ``POST /api/v1/deals/<pk>/issue-invoice/``."""
    deal = get_object_or_404(deals_visible(user=request.user).select_related("client"), pk=pk)
    if not (user_access(request.user).sees_money or request.user.has_perm("invoicing.add_invoice")):
        raise PermissionDenied
    try:
        invoice, _created = services.invoice_issue_from_deal(deal=deal, actor=request.user, origin="ui")
    except ApplicationError as exc:
        messages.error(request, _("The invoice was not issued: %(reason)s") % {"reason": _error_text(exc)})
        return redirect("ui-deal", pk=pk)
    messages.success(request, _("Invoice %(number)s is issued.") % {"number": invoice.number})
    return redirect("ui-invoice", pk=invoice.pk)


# --- payments ------------------------------------------------------------------------------------


class PaymentFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("Search"), required=False, max_length=100)
    status = forms.ChoiceField(
        label=gettext_lazy("Status"), choices=[("", "—"), *PaymentStatus.choices], required=False
    )


class ReassignForm(forms.Form):
    number = forms.CharField(label=gettext_lazy("Invoice number"), max_length=40)
    amount = forms.DecimalField(
        label=gettext_lazy("Amount"), required=False, max_digits=18, decimal_places=2, min_value=0.01
    )

    def clean_number(self):
        number = self.cleaned_data["number"].strip()
        invoice = Invoice.objects.filter(number=number, status__in=OPEN_INVOICE_STATUSES).first()
        if invoice is None:
            raise forms.ValidationError(_("No open invoice has this number."))
        self.invoice = invoice
        return number


def _payments_page(request, *, forms_by_decision=None, status=200):
    form = PaymentFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    qs = selectors.payment_list(
        user=request.user, status=data.get("status") or "", search=data.get("q") or ""
    )
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    queue = list(selectors.review_queue(user=request.user)[:100])
    forms_by_decision = forms_by_decision or {}
    review = [(d, forms_by_decision.get(d.pk) or ReassignForm(prefix=f"d{d.pk}")) for d in queue]
    return render(
        request,
        "ui/invoicing/payments.html",
        {"nav": "payments", "form": form, "page": page, "query": query.urlencode(), "review": review},
        status=status,
    )


@login_required
@require_GET
def payments(request):
    _require_money(request.user)
    return _payments_page(request)


@login_required
@require_POST
def match_review(request, pk: int):
    """Confirm the suggestion, or reassign the payment to the invoice a person names."""
    _require_money(request.user)
    decision = get_object_or_404(selectors.review_queue(user=request.user), pk=pk)
    try:
        if request.POST.get("action") == "confirm":
            match_confirm(decision=decision, actor=request.user, origin="ui")
            messages.success(request, _("Match confirmed."))
        else:
            form = ReassignForm(request.POST, prefix=f"d{decision.pk}")
            if not form.is_valid():
                return _payments_page(request, forms_by_decision={decision.pk: form}, status=400)
            match_reassign(
                decision=decision,
                invoice=form.invoice,
                amount=form.cleaned_data.get("amount"),
                actor=request.user,
                origin="ui",
            )
            messages.success(
                request, _("Payment applied to invoice %(number)s.") % {"number": form.invoice.number}
            )
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
    return redirect("ui-payments")
