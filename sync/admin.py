"""Admin: connections (credentials write-only, mappings inline, schedule, run / dry run / pause),
the run log, quarantine with "retry", conflicts with "keep ours / take theirs", the webhook inbox."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from hub.errors import ApplicationError

from . import services
from .connectors import connector_class, systems
from .mapping.canonical import ENTITIES as CANONICAL
from .mapping.transforms import TRANSFORM_HELP, TRANSFORMS
from .models import (
    Conflict,
    ConflictStatus,
    Connection,
    ExternalRef,
    FieldMapping,
    InboundEvent,
    IssueStatus,
    SyncIssue,
    SyncRun,
)


class FieldMappingForm(forms.ModelForm):
    class Meta:
        model = FieldMapping
        fields = [
            "entity",
            "external_path",
            "canonical_field",
            "direction",
            "transform",
            "params",
            "owner",
            "position",
        ]
        widgets = {
            "entity": forms.Select(choices=[(e, e) for e in CANONICAL]),
            "transform": forms.Select(
                choices=[(t, f"{t} — {TRANSFORM_HELP.get(t, '')}") for t in TRANSFORMS]
            ),
        }

    def clean(self):
        data = super().clean()
        entity, name = data.get("entity"), data.get("canonical_field")
        if entity in CANONICAL and name and name not in CANONICAL[entity]:
            self.add_error(
                "canonical_field", _("%(entity)s has no field %(name)s; fields: %(known)s")
                % {"entity": entity, "name": name, "known": ", ".join(CANONICAL[entity])},
            )  # fmt: skip
        if data.get("params") is not None and not isinstance(data["params"], dict):
            self.add_error("params", _('Parameters are a JSON object, e.g. {"scale": 2}.'))
        return data


class FieldMappingInline(admin.TabularInline):
    model = FieldMapping
    form = FieldMappingForm
    extra = 0


class ConnectionForm(forms.ModelForm):
    system = forms.ChoiceField(choices=[])
    new_credentials = forms.CharField(
        label=_("set credentials"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text=_(
            "KEY=VALUE per line. Stored encrypted and never shown again; empty keeps the stored ones."
        ),
    )

    class Meta:
        model = Connection
        fields = [
            "name", "system", "role", "base_url", "enabled", "paused_reason", "conflict_policy",
            "rate_limit_per_second", "schedule_minutes", "options",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["system"].choices = [(k, f"{k} — {v.title or k}") for k, v in systems().items()]

    def clean_new_credentials(self):
        pairs = {}
        for line in (self.cleaned_data.get("new_credentials") or "").splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise forms.ValidationError(_("Each line is KEY=VALUE."))
            pairs[key.strip()] = value.strip()
        allowed = set(
            systems()
            .get(self.cleaned_data.get("system") or "", type("", (), {"credential_keys": ()}))
            .credential_keys
        )
        unknown = set(pairs) - allowed
        if unknown:
            raise forms.ValidationError(_("Unknown credential(s): %s") % ", ".join(sorted(unknown)))
        return pairs


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    inlines = [FieldMappingInline]
    list_display = [
        "name",
        "system",
        "role",
        "enabled",
        "schedule_minutes",
        "last_run_at",
        "last_success_at",
        "short_error",
    ]
    list_filter = ["system", "role", "enabled"]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "stored_credentials",
        "last_run_at",
        "last_success_at",
        "last_error",
        "created_at",
        "updated_at",
    ]
    actions = ["run_now", "dry_run", "preview_mapping", "pause", "resume", "add_default_mappings"]

    @admin.display(description=_("stored credentials"))
    def stored_credentials(self, obj):
        return ", ".join(services.credential_keys(connection=obj)) if obj.pk else "—"

    @admin.display(description=_("last error"))
    def short_error(self, obj):
        return (obj.last_error or "")[:80]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("new_credentials"):
            services.credentials_set(connection=obj, values=form.cleaned_data["new_credentials"])
        services.schedule_set(connection=obj, minutes=obj.schedule_minutes)
        if not change:
            added = services.mappings_seed(connection=obj)
            self.message_user(request, _("%(n)d default mappings added.") % {"n": added})

    def _run(self, request, queryset, dry_run: bool):
        for connection in queryset:
            try:
                result = services.sync_run(connection=connection, dry_run=dry_run, trigger="admin")
            except (services.RunBusy, ApplicationError) as exc:
                self.message_user(request, f"{connection.name}: {exc}", messages.ERROR)
                continue
            level = messages.SUCCESS if result.ok else messages.ERROR
            text = "; ".join(result.lines()) or "nothing to sync"
            prefix = _("plan") if dry_run else result.run.get_status_display()
            self.message_user(request, f"{connection.name} ({prefix}): {text} {result.run.error}", level)

    @admin.action(description=_("Run a sync now"))
    def run_now(self, request, queryset):
        self._run(request, queryset, dry_run=False)

    @admin.action(description=_("Dry run: show what a sync would change"))
    def dry_run(self, request, queryset):
        self._run(request, queryset, dry_run=True)

    @admin.action(description=_("Preview the mapping on the first records (writes nothing)"))
    def preview_mapping(self, request, queryset):
        for connection in queryset:
            try:
                streams = connector_class(connection.system).streams
                for entity in streams:
                    preview = services.mapping_preview(connection=connection, entity=entity, limit=3)
                    rows = "; ".join(
                        f"{row['external_id']}: {row.get('error') or row.get('outcome')} {row['canonical']}"
                        for row in preview["rows"]
                    )
                    self.message_user(
                        request,
                        f"{connection.name} {entity}: columns {', '.join(map(str, preview['columns']))}; "
                        f"not mapped: {', '.join(map(str, preview['unmapped'])) or 'none'}; {rows or 'no records'}",
                    )
            except services.ConnectorError as exc:
                self.message_user(request, f"{connection.name}: {exc}", messages.ERROR)

    @admin.action(description=_("Pause"))
    def pause(self, request, queryset):
        for connection in queryset:
            services.connection_pause(connection=connection, reason=f"paused by {request.user}")

    @admin.action(description=_("Resume"))
    def resume(self, request, queryset):
        for connection in queryset:
            services.connection_resume(connection=connection)

    @admin.action(description=_("Add missing default mappings"))
    def add_default_mappings(self, request, queryset):
        for connection in queryset:
            services.mappings_seed(connection=connection)


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ["connection", "started_at", "trigger", "dry_run", "status", "duration_ms", "error"]
    list_filter = ["status", "dry_run", "trigger", "connection"]
    date_hierarchy = "started_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SyncIssue)
class SyncIssueAdmin(admin.ModelAdmin):
    list_display = [
        "connection",
        "entity",
        "external_id",
        "kind",
        "reason",
        "status",
        "attempts",
        "updated_at",
    ]
    list_filter = ["status", "kind", "entity", "connection"]
    search_fields = ["external_id", "reason"]
    readonly_fields = ["connection", "run", "entity", "external_id", "kind", "reason", "payload", "attempts",
                       "created_at", "updated_at", "resolved_at"]  # fmt: skip
    actions = ["retry", "ignore"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Retry the quarantined records"))
    def retry(self, request, queryset):
        results = {}
        for issue in queryset.filter(status=IssueStatus.OPEN).select_related("connection"):
            try:
                outcome = services.issue_retry(issue=issue)
            except services.ConnectorError as exc:
                outcome = f"error: {exc}"
            results[outcome] = results.get(outcome, 0) + 1
        self.message_user(
            request, ", ".join(f"{k}: {v}" for k, v in results.items()) or _("nothing to retry")
        )

    @admin.action(description=_("Ignore"))
    def ignore(self, request, queryset):
        queryset.filter(status=IssueStatus.OPEN).update(status=IssueStatus.IGNORED)


@admin.register(Conflict)
class ConflictAdmin(admin.ModelAdmin):
    list_display = [
        "connection",
        "entity",
        "object_id",
        "field",
        "hub_value",
        "remote_value",
        "policy",
        "status",
        "created_at",
    ]
    list_filter = ["status", "policy", "entity", "connection"]
    readonly_fields = [f.name for f in Conflict._meta.fields]
    actions = ["keep_ours", "take_theirs"]

    def has_add_permission(self, request):
        return False

    def _resolve(self, request, queryset, take):
        done = 0
        for conflict in queryset.filter(status=ConflictStatus.OPEN).select_related("connection"):
            try:
                services.conflict_resolve(conflict=conflict, take=take, user=request.user)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"#{conflict.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, _("%(n)d conflicts resolved.") % {"n": done})

    @admin.action(description=_("Keep ours (the hub's value)"))
    def keep_ours(self, request, queryset):
        self._resolve(request, queryset, "ours")

    @admin.action(description=_("Take theirs (the remote value)"))
    def take_theirs(self, request, queryset):
        self._resolve(request, queryset, "theirs")


@admin.register(InboundEvent)
class InboundEventAdmin(admin.ModelAdmin):
    list_display = [
        "connection",
        "event_id",
        "entity",
        "external_id",
        "action",
        "status",
        "attempts",
        "received_at",
    ]
    list_filter = ["status", "connection", "entity"]
    search_fields = ["event_id", "external_id"]
    readonly_fields = [f.name for f in InboundEvent._meta.fields]
    actions = ["reprocess"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Process again"))
    def reprocess(self, request, queryset):
        for inbound in queryset.exclude(status="rejected"):
            InboundEvent.objects.filter(pk=inbound.pk).update(status="pending")
            services.inbound_process(inbound_id=inbound.pk)


@admin.register(ExternalRef)
class ExternalRefAdmin(admin.ModelAdmin):
    list_display = ["connection", "entity", "external_id", "object_id", "last_synced_at", "deleted_at"]
    list_filter = ["connection", "entity"]
    search_fields = ["external_id"]
    readonly_fields = [f.name for f in ExternalRef._meta.fields]

    def has_add_permission(self, request):
        return False
