"""``manage.py import_bank_statement FILE [--only-valid]``: the same import and summary as the API."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from invoicing.bank_statements import bank_statement_import, import_summary
from invoicing.models import StatementImportStatus


class Command(BaseCommand):
    help = "Import a 1CClientBankExchange bank statement; prints the summary as JSON."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--only-valid",
            action="store_true",
            help="Import the valid documents of a file with broken lines (the rest are listed).",
        )

    def handle(self, *args, file: Path, only_valid: bool, **options):
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        log = bank_statement_import(
            data=file.read_bytes(), file_name=file.name, only_valid=only_valid, origin="command"
        )
        summary = import_summary(log)
        self.stdout.write(json.dumps(summary, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2))
        if log.status == StatementImportStatus.REFUSED:
            raise CommandError("the statement was refused; nothing was imported: " + "; ".join(log.errors))
