"""Property tests of the money arithmetic (pure functions, no database).

"VAT included and on top agree to the kopeck" means, precisely: take any line priced without VAT
(``on_top``) and let T be its total with VAT. Entering T as the VAT-inclusive amount of the same line
(``included``) gives back exactly the same net amount and the same VAT, to the kopeck — per line, and
therefore for the document totals, since those are sums of line amounts.
"""

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.pricing import document_totals, line_totals, money
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import _set_totals

quantities = st.decimals(min_value=D("0.001"), max_value=D("10000"), places=3)
prices = st.decimals(min_value=D("0"), max_value=D("1000000"), places=2)
discounts = st.decimals(min_value=D("0"), max_value=D("100"), places=2)
rates = st.sampled_from([D("0"), D("10"), D("20"), D("22"), D("5"), D("7")])
modes = st.sampled_from(["on_top", "included", "none"])
line = st.fixed_dictionaries(
    {"quantity": quantities, "unit_price": prices, "discount_pct": discounts, "vat_rate": rates}
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(line, min_size=1, max_size=12), mode=modes)
def test_totals_equal_the_sum_of_lines(lines, mode):
    # given any mix of quantities, prices, discounts and rates in any VAT mode
    invoice = Invoice(vat_mode=mode)
    objs = [InvoiceLine(unit_cost=D("0"), **ln) for ln in lines]
    # when the invoice totals are computed
    _set_totals(invoice, objs)
    per_line = [line_totals(unit_cost=D("0"), vat_mode=mode, **ln) for ln in lines]
    # then they are the sums of the lines, each line is net + VAT, amounts are whole kopecks
    assert invoice.amount_net == sum((t.amount_net for t in per_line), D("0"))
    assert invoice.vat_amount == sum((t.vat_amount for t in per_line), D("0"))
    assert invoice.amount_total == invoice.amount_net + invoice.vat_amount
    for t in per_line:
        assert t.amount_total == t.amount_net + t.vat_amount
        assert t.vat_amount == money(t.vat_amount) and t.amount_net == money(t.amount_net)
        assert t.vat_amount >= 0 and t.amount_net >= 0
    if mode == "none":
        assert invoice.vat_amount == 0


@settings(max_examples=500, deadline=None)
@given(lines=st.lists(line, min_size=1, max_size=12))
def test_vat_included_and_on_top_agree_to_the_kopeck(lines):
    on_top = [line_totals(unit_cost=D("0"), vat_mode="on_top", **ln) for ln in lines]
    # the same lines entered with their VAT-inclusive totals as the price
    included = [
        line_totals(
            quantity=D("1"),
            unit_price=t.amount_total,
            discount_pct=D("0"),
            vat_rate=ln["vat_rate"],
            unit_cost=D("0"),
            vat_mode="included",
        )
        for ln, t in zip(lines, on_top, strict=True)
    ]
    for a, b in zip(on_top, included, strict=True):
        assert (a.amount_net, a.vat_amount, a.amount_total) == (b.amount_net, b.vat_amount, b.amount_total)
    assert document_totals(on_top) == document_totals(included)
