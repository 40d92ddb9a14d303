"""Include at `sync/1c_exchange/<str:name>/`:

    path("sync/1c_exchange/<str:name>/", include("sync.commerceml_urls")),

so 1C's "Адрес сайта" is `https://hub.example.ru/sync/1c_exchange/<connection name>/`.
"""

from django.urls import path

from sync.commerceml_views import exchange

app_name = "commerceml"
urlpatterns = [path("", exchange, name="exchange")]
