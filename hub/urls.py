from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from invoicing.api import DealIssueInvoiceView, InvoiceViewSet, PaymentViewSet
from invoicing.intake_api import BankStatementUpload, MatchDecisionViewSet, stripe_webhook, yookassa_webhook
from notifications.api import NotificationViewSet

from . import views
from .api import ClientViewSet, ContactViewSet, DealViewSet, PipelineViewSet, ProductViewSet, StageViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("clients", ClientViewSet, basename="client")
router.register("contacts", ContactViewSet, basename="contact")
router.register("products", ProductViewSet, basename="product")
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("stages", StageViewSet, basename="stage")
router.register("deals", DealViewSet, basename="deal")
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("payments", PaymentViewSet, basename="payment")
router.register("payment-matches", MatchDecisionViewSet, basename="payment-match")
router.register("notifications", NotificationViewSet, basename="notification")

urlpatterns = [
    # The front door is the manager UI; the admin stays at /admin/.
    path("", RedirectView.as_view(pattern_name="ui-home", permanent=False)),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("app/", include("hub.ui_urls")),
    path("app/", include("invoicing.ui_urls")),
    path("app/", include("notifications.ui_urls")),
    path("app/", include("analytics.ui_urls")),
    path("app/", include("sync.ui_urls")),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/bank-statements/", BankStatementUpload.as_view(), name="bank-statements"),
    path("api/v1/deals/<int:pk>/issue-invoice/", DealIssueInvoiceView.as_view(), name="deal-issue-invoice"),
    path("api/v1/analytics/", include("analytics.api")),
    path("api/v1/", include(router.urls)),
    path("webhooks/yookassa/", yookassa_webhook, name="webhook-yookassa"),
    path("webhooks/stripe/", stripe_webhook, name="webhook-stripe"),
    path("sync/1c_exchange/<str:name>/", include("sync.commerceml_urls")),
    path("sync/", include("sync.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler404 = "hub.views.not_found"
handler500 = "hub.views.server_error"
