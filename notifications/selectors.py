"""Reads of the inbox."""

from .models import Notification


def inbox_list(*, user):
    return Notification.objects.filter(user=user).order_by("-id")


def inbox_unread_count(*, user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
