"""The public paths: issue a deal's invoice, fetch its PDF, void/credit/send."""

from decimal import Decimal as D

from hub.services import deal_create
from invoicing.models import InvoiceDelivery
from tests.test_api import assert_error_shape

LINE = {"description": "Насос", "quantity": D("1"), "unit_price": D("1000.00"), "vat_rate": D("22")}


def test_issue_invoice_from_deal_and_get_pdf(api, anon_api, company, pipeline, buyer):
    deal = deal_create(title="Pumps", client=buyer, lines=[LINE])
    response = api.post(f"/api/v1/deals/{deal.pk}/issue-invoice/")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] and body["status"] == "issued" and body["amount_total"] == "1220.00"
    # a second click does not bill the deal twice
    assert_error_shape(api.post(f"/api/v1/deals/{deal.pk}/issue-invoice/"), 409)
    pdf = api.get(f"/api/v1/invoices/{body['id']}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert anon_api.get(f"/api/v1/invoices/{body['id']}/pdf/").status_code in (401, 403)
    # send, credit note, void (void refused once credited? no: void needs unpaid, allowed)
    assert api.post(f"/api/v1/invoices/{body['id']}/send/", {}, format="json").status_code == 202
    assert InvoiceDelivery.objects.filter(invoice_id=body["id"]).count() == 1
    note = api.post(f"/api/v1/invoices/{body['id']}/credit-note/", {"reason": "return"}, format="json")
    assert note.status_code == 201 and note.json()["kind"] == "credit_note"
    void = api.post(f"/api/v1/invoices/{body['id']}/void/", {}, format="json")
    assert void.status_code == 200 and void.json()["status"] == "void"
    assert_error_shape(api.post(f"/api/v1/invoices/{body['id']}/void/", {}, format="json"), 409)


def test_issue_invoice_bad_deal_is_a_clear_error(api, company, pipeline, buyer):
    deal = deal_create(title="Empty", client=buyer)
    response = api.post(f"/api/v1/deals/{deal.pk}/issue-invoice/")
    assert_error_shape(response, 400)
    assert api.post("/api/v1/deals/999999/issue-invoice/").status_code == 404
