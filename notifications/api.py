"""The in-app inbox over the API: the caller's own notifications, unread count, mark read."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from hub.api import error_schema

from . import selectors, services
from .models import Notification


class NotificationOutput(serializers.ModelSerializer):
    is_read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "event_type", "title", "body", "link", "created_at", "read_at", "is_read"]

    def get_is_read(self, obj) -> bool:
        return obj.read_at is not None


class MarkReadInput(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_empty=False)


class IsUser(permissions.BasePermission):
    """The inbox belongs to a person: a key that acts as no user has none."""

    message = "The inbox needs a user: use a session or an API key that acts as a user."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(request.user, "pk", None))


Count = inline_serializer("UnreadCount", fields={"unread": serializers.IntegerField()})
Marked = inline_serializer(
    "MarkedRead", fields={"marked": serializers.IntegerField(), "unread": serializers.IntegerField()}
)


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = NotificationOutput
    permission_classes = [IsUser]
    filterset_fields = ["event_type"]
    ordering_fields = ["id", "created_at"]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        qs = selectors.inbox_list(user=self.request.user)
        unread = self.request.query_params.get("unread")
        if unread in ("1", "true"):
            qs = qs.filter(read_at__isnull=True)
        return qs

    @extend_schema(
        summary="How many of my notifications are unread", responses={200: Count, **error_schema(401, 403)}
    )
    @action(detail=False, methods=["get"], url_path="unread-count")
    def unread_count(self, request):
        return Response({"unread": selectors.inbox_unread_count(user=request.user)})

    @extend_schema(
        summary="Mark one notification read",
        request=None,
        responses={200: Marked, **error_schema(401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def read(self, request, *args, **kwargs):
        marked = services.notifications_mark_read(user=request.user, ids=[self.get_object().pk])
        return Response({"marked": marked, "unread": selectors.inbox_unread_count(user=request.user)})

    @extend_schema(
        summary="Mark several (ids) or all notifications read",
        request=MarkReadInput,
        responses={200: Marked, **error_schema(400, 401, 403)},
    )
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        data = MarkReadInput(data=request.data)
        data.is_valid(raise_exception=True)
        marked = services.notifications_mark_read(user=request.user, ids=data.validated_data.get("ids"))
        return Response({"marked": marked, "unread": selectors.inbox_unread_count(user=request.user)})
