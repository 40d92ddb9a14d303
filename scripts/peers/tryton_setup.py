"""Bootstrap a minimal accounting company in a fresh Tryton database (in-process, through proteus).

Run by scripts/peers/tryton_up.sh with the Tryton venv's Python:
    TRYTONPASSFILE=... python tryton_setup.py trytond.conf DBNAME

Creates the company "Dunder Mifflin" (EUR), the minimal English chart of accounts, a fiscal year with
invoice sequences and periods, a 20 % customer tax, a payment term, a "Bank transfer" invoice payment
method on the cash journal and a "Consulting" service product, and makes `admin` work in that company.
"""

import datetime as dt
import sys
from decimal import Decimal

from proteus import Model
from proteus import config as pconfig


def main(conf_file: str, database: str) -> None:
    pconfig.set_trytond(database=database, config_file=conf_file)  # user 'admin'

    # Imported after set_trytond: the tools need the pool of the configured database.
    from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, create_tax, get_accounts
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import create_company, get_company

    create_company(currency="EUR")
    create_chart()
    company = get_company()
    today = dt.datetime.now(dt.UTC).date()
    fiscalyear = set_fiscalyear_invoice_sequences(create_fiscalyear(today=today))
    fiscalyear.click("create_period")
    accounts = get_accounts()

    tax = create_tax(Decimal(".20"))
    tax.save()
    term = create_payment_term()
    term.save()

    journal_model = Model.get("account.journal")
    (cash_journal,) = journal_model.find([("type", "=", "cash")])
    method = Model.get("account.invoice.payment.method")(
        name="Bank transfer",
        journal=cash_journal,
        credit_account=accounts["cash"],
        debit_account=accounts["cash"],
    )
    method.save()

    category = Model.get("product.category")(
        name="Services",
        accounting=True,
        account_revenue=accounts["revenue"],
        account_expense=accounts["expense"],
    )
    category.customer_taxes.append(tax)
    category.save()
    (unit,) = Model.get("product.uom").find([("name", "=", "Unit")])
    template = Model.get("product.template")(
        name="Consulting",
        default_uom=unit,
        type="service",
        list_price=Decimal("100"),
        account_category=category,
    )
    template.save()

    (admin,) = Model.get("res.user").find([("login", "=", "admin")])
    if company not in admin.companies:
        admin.companies.append(company)
    admin.company = company
    admin.save()
    print(
        "company",
        company.id,
        "revenue",
        accounts["revenue"].id,
        "receivable",
        accounts["receivable"].id,
        "payment_method",
        method.id,
        "payment_term",
        term.id,
        "product",
        template.products[0].id,
        "tax",
        tax.id,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
