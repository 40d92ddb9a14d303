"""URLs of the money pages of the manager UI (mounted under /app/ by ``hub.urls``)."""

from django.urls import path

from . import views

urlpatterns = [
    path("invoices/", views.invoices, name="ui-invoices"),
    path("invoices/<int:pk>/", views.invoice_detail, name="ui-invoice"),
    path("invoices/<int:pk>/preview/", views.invoice_preview, name="ui-invoice-preview"),
    path("invoices/<int:pk>/pdf/", views.invoice_pdf, name="ui-invoice-pdf"),
    path("invoices/<int:pk>/send/", views.invoice_send, name="ui-invoice-send"),
    path("invoices/<int:pk>/void/", views.invoice_void, name="ui-invoice-void"),
    path("deals/<int:pk>/issue-invoice/", views.deal_issue_invoice, name="ui-deal-issue-invoice"),
    path("payments/", views.payments, name="ui-payments"),
    path("payments/review/<int:pk>/", views.match_review, name="ui-match-review"),
]
