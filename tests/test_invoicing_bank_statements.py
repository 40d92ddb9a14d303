"""1CClientBankExchange: both encodings, several documents, outgoing and own transfers, broken lines."""

from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from invoicing.bank_statements import MAX_FILE_BYTES, bank_statement_import, statement_parse
from invoicing.models import BankStatementImport, InvoiceStatus, MatchDecision, MatchStatus, Payment
from tests.factories import ClientFactory

FIXTURES = Path(__file__).parent / "fixtures" / "bank"
CP1251 = (FIXTURES / "statement_1.03_cp1251.txt").read_bytes()
UTF8 = (FIXTURES / "statement_1.02_utf8.txt").read_bytes()
BROKEN = (FIXTURES / "statement_broken_line.txt").read_bytes()


def test_parser_reads_windows_1251_version_1_03():
    statement = statement_parse(CP1251)
    assert (statement.encoding, statement.version, statement.errors) == ("cp1251", "1.03", [])
    assert [d.number for d in statement.documents] == ["512", "77", "15", "16"]
    first = statement.documents[0]
    assert first.amount == Decimal("12200.00") and first.payer_inn == "7701000019"
    assert first.recipient_account == "40702810938000000001"
    assert first.purpose.startswith("Оплата по счету № 2026-00001")
    assert str(statement.period_start) == "2026-01-14" and str(statement.period_end) == "2026-01-15"


def test_parser_reads_utf8_version_1_02():
    statement = statement_parse(UTF8)
    assert (statement.encoding, statement.version, statement.errors) == ("utf-8", "1.02", [])
    assert len(statement.documents) == 3


def test_parser_names_the_broken_line_and_its_reason():
    statement = statement_parse(BROKEN)
    assert [str(e) for e in statement.errors] == [
        "line 36: Сумма: '24 400,00 руб' is not an amount such as 1200.50"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Payment\r\n", "line 1: the file does not start with 1CClientBankExchange"),
        ("1CClientBankExchange\nВерсияФормата=2.00\nКонецФайла\n", "line 2: format version '2.00'"),
        (
            "1CClientBankExchange\nВерсияФормата=1.03\nмусор без знака равенства\nКонецФайла\n",
            "line 3: expected Key=Value",
        ),
        (
            "1CClientBankExchange\nВерсияФормата=1.03\nСекцияДокумент=Платежное поручение\nНомер=1\n",
            "line 3: document not closed",
        ),
    ],
)
def test_parser_refuses_malformed_structure(text, expected):
    errors = [str(e) for e in statement_parse(text.encode()).errors]
    assert any(e.startswith(expected) for e in errors), errors


@pytest.mark.django_db
def test_import_creates_only_incoming_payments_to_our_accounts_and_matches_them(company, issue_invoice):
    # given two clients with one open invoice each, numbered as the purposes say
    a = ClientFactory(inn="7701000019")
    b = ClientFactory(inn="7702000029")
    inv1, inv2 = issue_invoice(a, 10), issue_invoice(b, 20)
    assert (inv1.number, inv2.number) == ("2026-00001", "2026-00002")
    # when the Windows-1251 statement is imported
    log = bank_statement_import(data=CP1251, file_name="jan.txt")
    # then the outgoing payment and the transfer between own accounts are skipped
    assert (log.status, log.documents, log.imported, log.skipped, log.duplicates) == ("imported", 4, 2, 2, 0)
    assert (log.matched, log.waiting_review) == (2, 0)
    assert set(Payment.objects.values_list("payer_inn", flat=True)) == {"7701000019", "7702000029"}
    inv1.refresh_from_db()
    inv2.refresh_from_db()
    assert inv1.status == inv2.status == InvoiceStatus.PAID


@pytest.mark.django_db
def test_reupload_and_overlapping_period_create_nothing_twice(company, issue_invoice):
    # given the cp1251 file already imported
    bank_statement_import(data=CP1251)
    # when the same file comes again, and then the UTF-8 file that overlaps it (two of three documents)
    again = bank_statement_import(data=CP1251)
    overlap = bank_statement_import(data=UTF8)
    # then only the new document of the overlapping file becomes a payment
    assert (again.imported, again.duplicates) == (0, 2)
    assert (overlap.imported, overlap.duplicates) == (1, 2)
    assert Payment.objects.count() == 3


@pytest.mark.django_db
def test_a_broken_line_refuses_the_whole_file_unless_only_valid_is_asked(company):
    refused = bank_statement_import(data=BROKEN)
    assert refused.status == "refused" and refused.errors == [
        "line 36: Сумма: '24 400,00 руб' is not an amount such as 1200.50"
    ]
    assert Payment.objects.count() == 0
    partial = bank_statement_import(data=BROKEN, only_valid=True)
    assert (partial.status, partial.imported, partial.errors) == ("partial", 1, refused.errors)
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_files_over_10_mb_are_refused(company):
    log = bank_statement_import(data=b"x" * (MAX_FILE_BYTES + 1))
    assert log.status == "refused" and "10 MB" in log.errors[0]
    assert Payment.objects.count() == 0


@pytest.mark.django_db
def test_api_upload_returns_the_summary(api, company, issue_invoice):
    issue_invoice(ClientFactory(inn="7701000019"), 10)
    response = api.post(
        "/api/v1/bank-statements/", {"file": SimpleUploadedFile("s.txt", CP1251)}, format="multipart"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("imported", "duplicates", "matched", "waiting_review", "errors")} == {
        "imported": 2,
        "duplicates": 0,
        "matched": 1,
        "waiting_review": 1,
        "errors": [],
    }
    assert MatchDecision.objects.filter(status=MatchStatus.REVIEW).count() == 1


@pytest.mark.django_db
def test_api_upload_of_a_broken_file_is_400_with_the_line(api, company):
    response = api.post(
        "/api/v1/bank-statements/", {"file": SimpleUploadedFile("s.txt", BROKEN)}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["file"] == [
        "line 36: Сумма: '24 400,00 руб' is not an amount such as 1200.50"
    ]
    assert BankStatementImport.objects.get().status == "refused"


@pytest.mark.django_db
def test_command_prints_the_summary_and_fails_on_a_refused_file(company, capsys):
    call_command("import_bank_statement", str(FIXTURES / "statement_1.02_utf8.txt"))
    assert '"imported": 3' in capsys.readouterr().out
    with pytest.raises(CommandError, match="line 36"):
        call_command("import_bank_statement", str(FIXTURES / "statement_broken_line.txt"))
