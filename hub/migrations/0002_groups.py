"""The three staff roles as groups: Manager, Accountant, Administrator.

On a fresh database the permissions do not exist yet while migrations run (Django creates them in
``post_migrate``), so they are created here first from the migration state of every app.

Idempotent: groups are fetched or created and permissions are only added, never removed, so a group an
administrator extended by hand keeps its extra permissions. The reverse removes the three groups.

Apps that get their first models later (``sync``, ``notifications``) are not in this migration's state:
their permissions have to be granted by the migration that introduces them.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CRUD = ("view", "add", "change", "delete")

HUB_CRM_MODELS = (
    "company",
    "channel",
    "client",
    "contact",
    "product",
    "pipeline",
    "stage",
    "deal",
    "dealline",
)
INVOICING_MODELS = ("invoice", "invoiceline", "payment", "paymentallocation", "numbersequence")

MANAGER = {
    "hub": [
        *(f"{action}_{model}" for model in ("client", "contact", "deal", "dealline") for action in CRUD[:3]),
        *(f"view_{model}" for model in ("product", "pipeline", "stage", "channel")),
    ],
    "invoicing": [
        *(f"view_{model}" for model in ("invoice", "invoiceline", "payment", "paymentallocation")),
        # Drafts only: issuing, changing and deleting invoices is the accountant's.
        "add_invoice",
        "add_invoiceline",
    ],
}

ACCOUNTANT = {
    "hub": [*(f"view_{model}" for model in HUB_CRM_MODELS), "add_product", "change_product"],
    "invoicing": [f"{action}_{model}" for model in INVOICING_MODELS for action in CRUD],
    "analytics": [f"{action}_marketingspend" for action in CRUD[:3]],
}

# Every permission of these apps, whatever models they have at this point of the migration graph.
ADMINISTRATOR_APPS = ("hub", "invoicing", "analytics", "sync", "notifications", "django_celery_beat", "auth")

GROUPS = ("Manager", "Accountant", "Administrator")


def _ensure_permissions(apps, using):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=using)
        app_config.models_module = None


def _permissions(Permission, spec, using):
    wanted = {(app_label, codename) for app_label, codenames in spec.items() for codename in codenames}
    found = list(
        Permission.objects.using(using)
        .filter(content_type__app_label__in=spec.keys(), codename__in={c for _, c in wanted})
        .select_related("content_type")
    )
    found = [p for p in found if (p.content_type.app_label, p.codename) in wanted]
    missing = wanted - {(p.content_type.app_label, p.codename) for p in found}
    if missing:
        # A renamed model must not silently leave a role without its rights.
        raise RuntimeError(f"Permissions not found: {', '.join(sorted('.'.join(m) for m in missing))}")
    return found


def create_groups(apps, schema_editor):
    using = schema_editor.connection.alias
    _ensure_permissions(apps, using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    roles = {
        "Manager": _permissions(Permission, MANAGER, using),
        "Accountant": _permissions(Permission, ACCOUNTANT, using),
        "Administrator": list(
            Permission.objects.using(using).filter(content_type__app_label__in=ADMINISTRATOR_APPS)
        ),
    }
    for name, permissions in roles.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(*permissions)


def remove_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("hub", "0001_initial"),
        ("invoicing", "0001_initial"),
        ("analytics", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        # The Administrator gets the beat schedule's permissions: its models must be in the state.
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
