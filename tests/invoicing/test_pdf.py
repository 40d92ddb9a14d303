"""The printed invoice: text, amount in words, the payment QR decoded by a real decoder, the sandbox."""

import io
import shutil
import subprocess
from decimal import Decimal as D

import pytest
from pypdf import PdfReader

from hub.errors import ValidationFailed
from invoicing import qr
from invoicing.models import Invoice, InvoiceTemplate, NumberSequence
from invoicing.services import invoice_create_draft, invoice_issue, invoice_pdf
from invoicing.words import amount_in_words

LINES = [
    {"description": "Насос ЦНС-38", "quantity": D("3"), "unit_price": D("12500.00"), "vat_rate": D("22")},
    {"description": "Монтаж", "quantity": D("1"), "unit_price": D("4999.99"), "vat_rate": D("22")},
]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def issued(buyer, **kwargs):
    return invoice_issue(invoice=invoice_create_draft(client=buyer, lines=LINES, **kwargs))


def test_amount_in_words_reads_a_decimal_not_kopecks():
    assert amount_in_words(D("1500")) == "Одна тысяча пятьсот рублей 00 копеек"
    assert amount_in_words(D("51749.97")) == "Пятьдесят одна тысяча семьсот сорок девять рублей 97 копеек"


def test_payment_string_follows_gost_56042(company):
    text = qr.payment_string(
        name="ООО «Ромашка» | филиал",
        personal_acc="40702810938000000001",
        bank_name="ПАО Сбербанк",
        bic="044525225",
        corresp_acc="30101810400000000225",
        payee_inn="7707083893",
        amount=D("1234.5"),
        purpose="Оплата по счёту № 1",
    )
    assert text == (
        "ST00012|Name=ООО «Ромашка» филиал|PersonalAcc=40702810938000000001|BankName=ПАО Сбербанк"
        "|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7707083893|Sum=123450"
        "|Purpose=Оплата по счёту № 1"
    )


def test_russian_invoice_text_holds_number_buyer_totals_and_words(company, buyer):
    # given an issued invoice with VAT on top
    invoice = issued(buyer)
    # when it is printed
    text = pdf_text(invoice_pdf(invoice=invoice))
    # then the page holds what the accountant checks
    assert f"Счёт на оплату № {invoice.number}" in text
    assert "7736050003" in text  # buyer's INN
    assert "42 499,99" in text and "9 350,00" in text and "51 849,99" in text
    assert invoice.amount_total == D("51849.99")
    assert "Всего наименований 2, на сумму 51 849,99 руб." in text
    assert "Пятьдесят одна тысяча восемьсот сорок девять рублей 99 копеек" in text
    assert "НДС (22%)" in text and "Руководитель" in text and "Бухгалтер" in text


def test_no_vat_invoice_prints_bez_nds(company, buyer):
    invoice = issued(buyer, vat_mode="none")
    text = pdf_text(invoice_pdf(invoice=invoice))
    assert "Без НДС" in text and "НДС (" not in text


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="pdftoppm (poppler-utils) is not installed")
def test_qr_code_on_the_page_decodes_to_the_gost_string(company, buyer, tmp_path):
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    # given an issued invoice and its PDF rasterised at print resolution
    invoice = issued(buyer)
    (tmp_path / "inv.pdf").write_bytes(invoice_pdf(invoice=invoice))
    subprocess.run(
        ["pdftoppm", "-r", "200", "-png", "-singlefile", str(tmp_path / "inv.pdf"), str(tmp_path / "page")],
        check=True,
    )
    # when a real decoder reads the page
    results = zxingcpp.read_barcodes(Image.open(tmp_path / "page.png"))
    # then it finds exactly the ST00012 string of the invoice
    assert [r.text for r in results] == [
        "ST00012|Name=ООО «Ромашка»|PersonalAcc=40702810938000000001|BankName=ПАО Сбербанк"
        "|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=7707083893|Sum=5184999"
        f"|Purpose=Оплата по счёту № {invoice.number} от {invoice.issue_date:%d.%m.%Y}"
    ]


def test_english_layout_for_a_foreign_client(company):
    from tests.factories import ClientFactory

    client = ClientFactory(
        name="ACME GmbH", inn="", country="DE", foreign_tax_id="DE123456789", address="Berlin"
    )
    invoice = invoice_issue(
        invoice=invoice_create_draft(
            client=client,
            currency="EUR",
            lines=[{"description": "Pump", "quantity": D("2"), "unit_price": D("100"), "vat_rate": D("0")}],
        )
    )
    text = pdf_text(invoice_pdf(invoice=invoice))
    assert f"Invoice {invoice.number}" in text and "DE123456789" in text
    assert "Two hundred euro, 00 cents" in text or "Two hundred euro" in text


def test_pdf_is_cached_until_the_invoice_changes(company, buyer):
    invoice = issued(buyer)
    first = invoice_pdf(invoice=invoice)
    rendered_at = Invoice.objects.get(pk=invoice.pk).pdf_rendered_at
    assert invoice_pdf(invoice=invoice) == first
    assert Invoice.objects.get(pk=invoice.pk).pdf_rendered_at == rendered_at
    # when what is printed changes (voided: stamped), the PDF is laid out again
    from invoicing.services import invoice_void

    invoice_void(invoice=invoice, reason="typo")
    assert invoice_pdf(invoice=invoice) != first
    assert Invoice.objects.get(pk=invoice.pk).pdf_rendered_at > rendered_at


@pytest.mark.parametrize(
    ("html", "css", "field"),
    [
        ('{% include "invoicing/invoice_ru.html" %}', "", "template.html"),
        ("{% load static %}<p>x</p>", "", "template.html"),
        ('<img src="file:///etc/passwd"><p>{{ number }}</p>', "", "template.html"),
        ('<img src="http://example.com/x.png"><p>{{ number }}</p>', "", "template.html"),
        ("<p>{{ number }}</p>", "@import url(https://example.com/x.css);", "template.css"),
        ("<p>{{ number }}</p>", "body { background: url(../hub/settings.py) }", "template.css"),
    ],
)
def test_a_template_that_reads_a_file_or_fetches_a_url_is_refused_and_consumes_no_number(
    company, buyer, html, css, field
):
    # given a template trying to escape the sandbox
    template = InvoiceTemplate.objects.create(name="evil", layout="ru", html=html, css=css)
    draft = invoice_create_draft(client=buyer, lines=LINES)
    # when a draft is issued with it
    with pytest.raises(ValidationFailed) as exc:
        invoice_issue(invoice=draft, template=template)
    # then the error names the template field, and no number is taken
    assert field in exc.value.fields
    draft.refresh_from_db()
    assert draft.number is None and draft.status == "draft"
    assert not NumberSequence.objects.filter(last_number__gt=0).exists()


def test_a_logo_from_the_static_files_is_allowed(company, buyer):
    template = InvoiceTemplate.objects.create(name="logo", layout="ru", logo="fonts/../invoicing/logo.svg")
    draft = invoice_create_draft(client=buyer, lines=LINES)
    invoice = invoice_issue(invoice=draft, template=template)
    assert invoice.number and invoice_pdf(invoice=invoice).startswith(b"%PDF")
