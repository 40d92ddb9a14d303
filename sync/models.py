"""Everything about other systems: connections, mappings, the identity map, cursors, run logs,
quarantine, conflicts and the webhook inbox. Canonical models never carry vendor columns."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    CRM = "crm", _("CRM")
    ACCOUNTING = "accounting", _("accounting")


class ConflictPolicy(models.TextChoices):
    OWNER_WINS = "owner_wins", _("the field's owner wins")
    NEWEST_WINS = "newest_wins", _("the newest change wins")
    MANUAL = "manual", _("manual review")


class Connection(models.Model):
    """One external system the hub syncs with. Credentials are encrypted at rest (see sync.crypto)."""

    name = models.SlugField(_("name"), max_length=64, unique=True)
    system = models.CharField(_("system"), max_length=32)
    role = models.CharField(_("role"), max_length=16, choices=Role, default=Role.CRM)
    base_url = models.CharField(_("base URL"), max_length=500)
    credentials_encrypted = models.TextField(_("credentials (encrypted)"), blank=True, editable=False)
    options = models.JSONField(_("options"), default=dict, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    paused_reason = models.CharField(_("paused because"), max_length=500, blank=True)
    conflict_policy = models.CharField(
        _("conflict policy"), max_length=16, choices=ConflictPolicy, default=ConflictPolicy.OWNER_WINS
    )
    rate_limit_per_second = models.DecimalField(
        _("rate limit, requests/s"), max_digits=8, decimal_places=2, null=True, blank=True
    )
    schedule_minutes = models.PositiveIntegerField(
        _("run every N minutes"), null=True, blank=True, help_text=_("Empty: no scheduled runs.")
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lock_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("connection")
        verbose_name_plural = _("connections")
        constraints = [
            models.CheckConstraint(
                condition=Q(rate_limit_per_second__isnull=True) | Q(rate_limit_per_second__gt=0),
                name="sync_connection_rate_positive",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.system})"

    @property
    def origin(self) -> str:
        """The `DomainEvent.origin` of changes this connection brings in."""
        return f"sync:{self.name}"


class Direction(models.TextChoices):
    IN = "in", _("in (remote ► hub)")
    OUT = "out", _("out (hub ► remote)")
    BOTH = "both", _("both ways")


class Owner(models.TextChoices):
    HUB = "hub", _("hub")
    REMOTE = "remote", _("remote system")


class FieldMapping(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="mappings")
    entity = models.CharField(_("entity"), max_length=16)
    external_path = models.CharField(_("external path"), max_length=255, blank=True)
    canonical_field = models.CharField(_("canonical field"), max_length=64)
    direction = models.CharField(_("direction"), max_length=4, choices=Direction, default=Direction.BOTH)
    transform = models.CharField(_("transform"), max_length=16, default="path")
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    owner = models.CharField(_("owning side"), max_length=8, choices=Owner, default=Owner.REMOTE)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["connection", "entity", "position", "id"]
        verbose_name = _("field mapping")
        verbose_name_plural = _("field mappings")
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "external_path", "canonical_field", "direction"],
                name="sync_mapping_unique",
            )
        ]

    def __str__(self) -> str:
        arrow = {"in": "►", "out": "◄", "both": "⇄"}.get(self.direction, "?")
        return f"{self.entity}: {self.external_path} {arrow} {self.canonical_field}"


class ExternalRef(models.Model):
    """The identity map: one external record ⇄ one hub object, with what was last synced."""

    # (no index of its own: both unique constraints lead with it)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="refs", db_index=False)
    entity = models.CharField(max_length=16)
    external_id = models.CharField(max_length=255)
    object_id = models.BigIntegerField()
    content_hash = models.CharField(
        max_length=32, blank=True, help_text="hash of the last remote content seen"
    )
    pushed_hash = models.CharField(max_length=32, blank=True, help_text="hash of the last content we pushed")
    source_hash = models.CharField(
        max_length=32, blank=True, help_text="hash of the last remote record as received, under its mapping"
    )
    snapshot = models.JSONField(default=dict, blank=True, help_text="canonical values at the last sync")
    remote_version = models.CharField(max_length=64, blank=True)
    remote_updated_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("external reference")
        verbose_name_plural = _("external references")
        constraints = [
            # on PostgreSQL its index also INCLUDEs source_hash, deleted_at, id (migration 0004): the
            # lookup of a page of refs is an index-only scan
            models.UniqueConstraint(fields=["connection", "entity", "external_id"], name="sync_ref_external"),
            models.UniqueConstraint(fields=["connection", "entity", "object_id"], name="sync_ref_object"),
        ]
        indexes = [models.Index(fields=["entity", "object_id"], name="sync_ref_object_idx")]

    def __str__(self) -> str:
        return f"{self.connection_id}:{self.entity}:{self.external_id} ⇄ #{self.object_id}"


class SyncCursor(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="cursors")
    stream = models.CharField(max_length=16)
    position = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "stream"], name="sync_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.connection_id}:{self.stream} @ {self.position}"


class RunStatus(models.TextChoices):
    RUNNING = "running", _("running")
    SUCCESS = "success", _("success")
    PARTIAL = "partial", _("success with quarantined records")
    FAILED = "failed", _("failed")


class SyncRun(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(_("trigger"), max_length=16, default="manual")
    dry_run = models.BooleanField(_("dry run"), default=False)
    status = models.CharField(_("status"), max_length=8, choices=RunStatus, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(_("started"), db_index=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration, ms"), null=True, blank=True)
    counts = models.JSONField(_("counts"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")

    def __str__(self) -> str:
        return f"{self.connection_id} {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class IssueStatus(models.TextChoices):
    OPEN = "open", _("open")
    RESOLVED = "resolved", _("resolved")
    IGNORED = "ignored", _("ignored")


class SyncIssue(models.Model):
    """A quarantined record: it failed validation or matching; the rest of its batch went on."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="issues")
    run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="issues")
    entity = models.CharField(_("entity"), max_length=16)
    external_id = models.CharField(_("external id"), max_length=255)
    kind = models.CharField(_("kind"), max_length=16, default="invalid")  # invalid | ambiguous | push
    reason = models.TextField(_("reason"))
    payload = models.JSONField(_("record"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=8, choices=IssueStatus, default=IssueStatus.OPEN)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=1)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = _("sync issue (quarantine)")
        verbose_name_plural = _("sync issues (quarantine)")
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "external_id", "kind"],
                condition=Q(status="open"),
                name="sync_issue_one_open",
            )
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.external_id}: {self.reason[:60]}"


class ConflictStatus(models.TextChoices):
    OPEN = "open", _("waiting for review")
    KEPT_OURS = "kept_ours", _("kept the hub's value")
    TOOK_THEIRS = "took_theirs", _("took the remote value")


class Conflict(models.Model):
    """Both sides changed one field since the last sync."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="conflicts")
    run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    entity = models.CharField(_("entity"), max_length=16)
    object_id = models.BigIntegerField(_("hub object"))
    external_id = models.CharField(_("external id"), max_length=255)
    field = models.CharField(_("field"), max_length=64)
    base_value = models.JSONField(_("value at last sync"), null=True, blank=True)
    hub_value = models.JSONField(_("hub value"), null=True, blank=True)
    remote_value = models.JSONField(_("remote value"), null=True, blank=True)
    policy = models.CharField(_("policy applied"), max_length=16, choices=ConflictPolicy)
    status = models.CharField(_("status"), max_length=12, choices=ConflictStatus, default=ConflictStatus.OPEN)
    created_at = models.DateTimeField(_("detected"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("conflict")
        verbose_name_plural = _("conflicts")

    def __str__(self) -> str:
        return f"{self.entity} #{self.object_id} {self.field}"


class InboundStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    PROCESSED = "processed", _("processed")
    FAILED = "failed", _("failed")
    REJECTED = "rejected", _("rejected (not authentic)")


class InboundEvent(models.Model):
    """The webhook inbox: stored first, processed after, deduplicated by the vendor's event id."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="inbound")
    event_id = models.CharField(_("event id"), max_length=255)
    entity = models.CharField(_("entity"), max_length=16, blank=True)
    external_id = models.CharField(_("external id"), max_length=255, blank=True)
    action = models.CharField(_("action"), max_length=8, default="upsert")
    record = models.JSONField(_("record"), null=True, blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    body = models.TextField(_("body"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=InboundStatus, default=InboundStatus.PENDING
    )
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = _("inbound event")
        verbose_name_plural = _("inbound events (webhook inbox)")
        constraints = [
            models.UniqueConstraint(fields=["connection", "event_id"], name="sync_inbound_dedup"),
        ]

    def __str__(self) -> str:
        return f"{self.connection_id}:{self.event_id} {self.status}"
