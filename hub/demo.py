"""Deterministic demo data: an own company, managers, a pipeline, channels with marketing spend,
products, clients with contacts, 18 months of deals, invoices and bank payments.

``seed_demo(today=...)`` draws everything from ``random.Random(seed)`` and derives every date and
timestamp from ``today``: the same seed and ``today`` give the same rows, field for field. Rows are
written with ``bulk_create`` in one transaction and no ``DomainEvent`` is recorded (the services would
flood the task queue with a thousand events nobody needs). ``auto_now``/``auto_now_add`` timestamps are
set afterwards with ``bulk_update``, which leaves them as given.

The data respects the database rules and the services' arithmetic: INN/OGRN with valid checksums,
phones in E.164, totals from ``hub.pricing``, gapless invoice numbers ``YYYY-NNNNN`` per company and
year (as ``invoicing.services.invoice_issue`` numbers them), amounts paid equal to their allocations.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

import phonenumbers
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from analytics.models import MarketingSpend
from invoicing.models import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    NumberSequence,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentStatus,
)

from .models import (
    Channel,
    Client,
    ClientKind,
    Company,
    Contact,
    Deal,
    DealLine,
    DealStatus,
    Pipeline,
    Product,
    Stage,
    VatMode,
)
from .pricing import CENT, document_totals, line_totals, money

DEFAULT_SEED = 20240917
MONTHS = 18
N_CLIENTS = 200
N_DEALS = 1000
BATCH = 500
MANAGER_GROUP = "Manager"

ALREADY_PRESENT = "Demo data already present; nothing to do."

# --- checksums (the same algorithms python-stdnum checks) -----------------------------------------


def inn_company(base9: str) -> str:
    """Complete a 9-digit base into a valid 10-digit company INN."""
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    return base9 + str(sum(int(d) * w for d, w in zip(base9, weights, strict=True)) % 11 % 10)


def inn_person(base10: str) -> str:
    """Complete a 10-digit base into a valid 12-digit personal INN."""
    w1 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    s = base10 + str(sum(int(d) * w for d, w in zip(base10, w1, strict=True)) % 11 % 10)
    w2 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    return s + str(sum(int(d) * w for d, w in zip(s, w2, strict=True)) % 11 % 10)


def ogrn(base12: str) -> str:
    """Complete a 12-digit base into a valid 13-digit OGRN."""
    return base12 + str(int(base12) % 11 % 10)


def ogrnip(base14: str) -> str | None:
    """Complete a 14-digit base into a 15-digit OGRNIP, or None when the check would be 10..12.

    The check digit is ``base % 13 % 10``; bases whose remainder is 10..12 are skipped so the number is
    valid under every reading of the rule (python-stdnum compares ``base % 13`` without ``% 10``).
    """
    check = int(base14) % 13
    return base14 + str(check) if check < 10 else None


def account_with_key(bic: str, account: str) -> str:
    """Set the control key (9th digit) of a 20-digit settlement account for a bank's BIC."""
    weights = (7, 1, 3) * 8
    digits = bic[-3:] + account[:8] + "0" + account[9:]
    total = sum(int(d) * w for d, w in zip(digits, weights, strict=False))
    key = (-total * 7) % 10  # the key's weight is 3, and 3 * 7 = 21 ≡ 1 (mod 10)
    return account[:8] + str(key) + account[9:]


# --- reference data -------------------------------------------------------------------------------
# fmt: off

COMPANY = {
    "legal_name": "ООО «Демо Хаб»",
    "short_name": "Демо Хаб",
    "inn": inn_company("770412345"),
    "kpp": "770401001",
    "ogrn": ogrn("119774612345"),
    "address": "125047, г. Москва, ул. 1-я Тверская-Ямская, д. 21, офис 405",
    "bank_name": "ПАО Сбербанк",
    "bic": "044525225",
    "settlement_account": account_with_key("044525225", "40702810038000123456"),
    "correspondent_account": "30101810400000000225",
    "vat_mode": VatMode.ON_TOP,
    "default_currency": "RUB",
}

MANAGERS = (  # username, first name, last name
    ("m.ivanova", "Мария", "Иванова"),
    ("a.smirnov", "Алексей", "Смирнов"),
    ("j.carter", "James", "Carter"),
    ("e.wilson", "Emily", "Wilson"),
)

PIPELINE_NAME = "Продажи / Sales"
STAGES = (  # code, name, is_won, is_lost, probability
    ("new", "Новая / New", False, False, 10),
    ("qualified", "Квалификация / Qualified", False, False, 25),
    ("proposal", "Предложение / Proposal", False, False, 50),
    ("negotiation", "Переговоры / Negotiation", False, False, 75),
    ("won", "Успешно / Won", True, False, 100),
    ("lost", "Проиграна / Lost", False, True, 0),
)

CHANNELS = (  # code, name, share of new clients, monthly spend range (RUB)
    ("yandex-direct", "Яндекс Директ", 34, (140_000, 240_000)),
    ("google-ads", "Google Ads", 10, (40_000, 80_000)),
    ("referral", "Рекомендации / Referral", 20, (15_000, 40_000)),
    ("exhibition", "Выставки / Exhibitions", 11, (5_000, 15_000)),
    ("website-seo", "Сайт и SEO / Website", 25, (60_000, 90_000)),
)
EXHIBITION_MONTHS = (3, 4, 9, 10)  # the trade-fair seasons: booths cost far more than the rest

PRODUCTS = (  # sku, name, unit, price, unit cost, VAT %, quantity profile, topic (ru, en)
    ("CRM-LIC-STD", "Лицензия CRM «Стандарт», 1 пользователь, 12 мес.", "лиц.", 9600, 3800, 0, "seats",
     ("Лицензии CRM", "CRM licences")),
    ("CRM-LIC-PRO", "Лицензия CRM «Профи», 1 пользователь, 12 мес.", "лиц.", 18000, 7200, 0, "seats",
     ("Лицензии CRM", "CRM licences")),
    ("ACC-LIC", "Лицензия модуля учёта, 12 мес.", "лиц.", 24000, 9000, 0, "seats",
     ("Модуль учёта", "Accounting module")),
    ("SRV-IMPL", "Внедрение и настройка CRM", "час", 3500, 1700, 22, "hours",
     ("Внедрение CRM", "CRM implementation")),
    ("SRV-INT-1C", "Интеграция с 1С:Бухгалтерия", "шт", 85000, 38000, 22, "one",
     ("Интеграция с 1С", "1C integration")),
    ("SRV-INT-BANK", "Подключение банковских выписок (клиент-банк)", "шт", 30000, 12000, 22, "one",
     ("Интеграция с банком", "Bank integration")),
    ("SRV-MIGR", "Перенос данных из Excel и Битрикс24", "час", 2800, 1400, 22, "hours",
     ("Миграция данных", "Data migration")),
    ("SRV-TRAIN", "Обучение пользователей (группа до 10 человек)", "шт", 28000, 9000, 22, "few",
     ("Обучение", "Training")),
    ("SRV-DEV", "Доработка под требования заказчика", "час", 4200, 2100, 22, "hours",
     ("Доработка", "Custom development")),
    ("SRV-AUDIT", "Аудит процессов продаж", "шт", 60000, 25000, 22, "one",
     ("Аудит продаж", "Sales process audit")),
    ("SUP-STD", "Техническая поддержка «Стандарт», 1 мес.", "шт", 15000, 6000, 22, "months",
     ("Поддержка", "Support")),
    ("SUP-PRM", "Техническая поддержка «Премиум», 1 мес.", "шт", 35000, 14000, 22, "months",
     ("Поддержка", "Premium support")),
    ("SRV-CONS", "Консультация эксперта", "час", 5000, 2500, 22, "hours",
     ("Консалтинг", "Consulting")),
    ("SRV-REP", "Настройка отчётов и дашбордов", "час", 3800, 1800, 22, "hours",
     ("Отчётность", "Reporting")),
    ("HW-SCAN", "Сканер штрихкодов Honeywell 1450g", "шт", 9800, 7600, 22, "many",
     ("Оборудование", "Hardware")),
    ("HW-PRN", "Принтер этикеток Xprinter XP-365B", "шт", 12500, 9900, 22, "few",
     ("Оборудование", "Hardware")),
    ("HW-KKT", "Онлайн-касса АТОЛ 30Ф с фискальным накопителем", "шт", 21000, 17500, 22, "few",
     ("Онлайн-кассы", "Cash registers")),
    ("SMS-PACK", "Пакет SMS-уведомлений (1000 шт.)", "шт", 2500, 1900, 22, "many",
     ("SMS-рассылки", "SMS notifications")),
    ("BOOK-B2B", "Книга «Продажи в B2B: практикум»", "шт", 1200, 550, 10, "many",
     ("Учебные материалы", "Training materials")),
    ("BOOK-GUIDE", "Методическое пособие по CRM (печатное издание)", "шт", 850, 300, 10, "many",
     ("Учебные материалы", "Training materials")),
    ("PILOT", "Пилотный проект: демо-стенд на 1 мес.", "шт", 10000, 14000, 22, "one",
     ("Пилотный проект", "Pilot project")),
)

REGIONS = (  # region code, tax inspection codes, city, postcode range, landline area codes, streets
    ("77", ("01", "03", "05", "07", "10", "14", "18", "22", "30", "43"), "г. Москва", (101000, 129347),
     ("495", "499"), ("ул. Тверская", "Ленинградский пр-т", "ул. Большая Ордынка", "Пресненская наб.",
                      "ул. Профсоюзная", "Варшавское ш.", "ул. Новый Арбат")),
    ("78", ("02", "06", "10", "13", "16", "25"), "г. Санкт-Петербург", (190000, 199406), ("812",),
     ("Невский пр-т", "ул. Садовая", "Лиговский пр-т", "Московский пр-т", "ул. Марата")),
    ("50", ("04", "18", "24", "47"), "Московская обл., г. Химки", (141400, 141446), ("498",),
     ("Ленинградское ш.", "ул. Молодёжная", "ул. Бабакина")),
    ("66", ("58", "61", "70"), "г. Екатеринбург", (620000, 620150), ("343",),
     ("ул. Малышева", "пр-т Ленина", "ул. 8 Марта")),
    ("54", ("02", "05", "07"), "г. Новосибирск", (630000, 630133), ("383",),
     ("Красный пр-т", "ул. Кирова", "ул. Фрунзе")),
    ("16", ("55", "56", "59"), "г. Казань", (420000, 420141), ("843",),
     ("ул. Баумана", "ул. Пушкина", "пр-т Победы")),
    ("52", ("53", "57", "60"), "г. Нижний Новгород", (603000, 603163), ("831",),
     ("ул. Большая Покровская", "ул. Родионова")),
    ("23", ("08", "09", "10"), "г. Краснодар", (350000, 350089), ("861",),
     ("ул. Красная", "ул. Северная", "ул. Ставропольская")),
)
REGION_WEIGHTS = (40, 15, 10, 8, 7, 7, 7, 6)

COMPANY_ROOTS = (
    ("Альфа", "alfa"), ("Вектор", "vektor"), ("Гранит", "granit"), ("Меридиан", "meridian"),
    ("Орион", "orion"), ("Сфера", "sfera"), ("Импульс", "impuls"), ("Атлант", "atlant"), ("Полюс", "polus"),
    ("Стрела", "strela"),
    ("Байкал", "baikal"), ("Восход", "voskhod"), ("Радуга", "raduga"), ("Кедр", "kedr"), ("Волга", "volga"),
    ("Спектр", "spektr"), ("Эталон", "etalon"), ("Феникс", "feniks"), ("Горизонт", "gorizont"),
    ("Континент", "kontinent"), ("Север", "sever"), ("Урал", "ural"), ("Аврора", "avrora"),
    ("Магистраль", "magistral"), ("Триумф", "triumf"), ("Ладога", "ladoga"), ("Алтай", "altai"),
)
COMPANY_SUFFIXES = (
    ("Строй", "stroy"), ("Торг", "torg"), ("Логистик", "logistic"), ("Софт", "soft"), ("Трейд", "trade"),
    ("Сервис", "service"), ("Пром", "prom"), ("Групп", "group"), ("Медиа", "media"), ("Агро", "agro"),
    ("Тех", "tech"), ("Фарм", "farm"), ("Энерго", "energo"), ("Маркет", "market"), ("Мебель", "mebel"),
)
LATIN_BRANDS = (  # display name, registered (Cyrillic) name, domain slug
    ("DataPoint", "ДатаПоинт", "datapoint"), ("SmartLine", "СмартЛайн", "smartline"),
    ("BlueSky Digital", "Блю Скай Диджитал", "bluesky-digital"), ("NordTech", "НордТех", "nordtech"),
    ("Profit Lab", "Профит Лаб", "profitlab"), ("GreenBox", "ГринБокс", "greenbox"),
    ("UrbanFood", "УрбанФуд", "urbanfood"), ("CloudWay", "КлаудВэй", "cloudway"),
    ("Brick & Stone", "Брик энд Стоун", "brickstone"), ("FreshMarket", "ФрешМаркет", "freshmarket"),
    ("MetaLogic", "МетаЛоджик", "metalogic"), ("TopSpeed", "ТопСпид", "topspeed"),
    ("PixelPro", "ПиксельПро", "pixelpro"), ("EcoHouse", "ЭкоХаус", "ecohouse"),
    ("Sigma Consulting", "Сигма Консалтинг", "sigma-consulting"), ("FastTrack", "ФастТрек", "fasttrack"),
)

FOREIGN = {
    "DE": {
        "names": (("Müller", "Schneider", "Becker", "Hoffmann", "Krause", "Weber", "Richter"),
                  ("Maschinenbau", "Logistik", "Handel", "Software", "Consulting", "Elektronik")),
        "form": "GmbH",
        "address": ("{n} Friedrichstraße, 10117 Berlin", "{n} Königsallee, 40212 Düsseldorf",
                    "{n} Maximilianstraße, 80539 München"),
        "country_name": "Germany",
    },
    "US": {
        "names": (("Brightline", "Northwind", "Bluepeak", "Redwood", "Summit", "Ironbridge"),
                  ("Analytics", "Systems", "Trading", "Labs", "Solutions")),
        "form": "Inc.",
        "address": ("{n} Market Street, San Francisco, CA 94105", "{n} Fifth Avenue, New York, NY 10118",
                    "{n} Congress Avenue, Austin, TX 78701"),
        "country_name": "USA",
    },
    "GB": {
        "names": (("Kingsley", "Ashford", "Whitmore", "Harbour", "Pemberton"),
                  ("Consulting", "Partners", "Trading", "Digital")),
        "form": "Ltd",
        "address": ("{n} Baker Street, London NW1 6XE", "{n} Deansgate, Manchester M3 2BW",
                    "{n} George Street, Edinburgh EH2 2PF"),
        "country_name": "United Kingdom",
    },
    "KZ": {
        "names": (("Астана", "Алатау", "Каспий", "Сарыарка", "Жетысу"),
                  ("Логистик", "Трейд", "Строй", "Агро", "Сервис")),
        "form": "ТОО",
        "address": ("г. Алматы, пр-т Абая, д. {n}", "г. Астана, ул. Кенесары, д. {n}",
                    "г. Караганда, пр-т Бухар-Жырау, д. {n}"),
        "country_name": "Казахстан",
    },
}
FOREIGN_COUNTRIES = ("DE", "DE", "US", "GB", "KZ", "KZ")

RU_LAST = ("Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков",
           "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов",
           "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин", "Захаров", "Белов", "Гусев")
RU_FIRST_M = ("Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Артём", "Илья", "Кирилл",
              "Михаил", "Никита", "Павел", "Роман", "Олег", "Игорь", "Евгений")
RU_FIRST_F = ("Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Екатерина", "Ирина", "Светлана",
              "Юлия", "Анастасия", "Дарья", "Марина", "Ксения")
RU_PATRONYMICS = (("Александрович", "Александровна"), ("Сергеевич", "Сергеевна"),
                  ("Дмитриевич", "Дмитриевна"), ("Андреевич", "Андреевна"), ("Алексеевич", "Алексеевна"),
                  ("Владимирович", "Владимировна"),
                  ("Николаевич", "Николаевна"), ("Игоревич", "Игоревна"), ("Викторович", "Викторовна"),
                  ("Петрович", "Петровна"), ("Олегович", "Олеговна"), ("Михайлович", "Михайловна"))
RU_POSITIONS = ("Генеральный директор", "Коммерческий директор", "Финансовый директор", "Главный бухгалтер",
                "Руководитель отдела продаж", "IT-директор", "Менеджер по закупкам", "Офис-менеджер")
EN_FIRST = ("James", "Emily", "Oliver", "Sophie", "Michael", "Anna", "Thomas", "Laura", "Daniel", "Emma",
            "Lukas", "Julia", "Felix", "Lena")
EN_LAST = ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Clarke", "Walker", "Schmidt", "Fischer",
           "Wagner", "Neumann", "Evans")
EN_POSITIONS = ("CEO", "CFO", "Head of Sales", "Procurement Manager", "IT Director", "Operations Manager")

LOST_REASONS = ("Выбрали конкурента", "Нет бюджета", "Дорого", "Проект отложен", "Не вышли на ЛПР",
                "Пропала потребность", "Chose a competitor", "No budget this year")
UTM_CAMPAIGNS = {
    "yandex-direct": ("crm_brand", "crm_generic", "integration_1c", "retargeting"),
    "google-ads": ("crm_search", "crm_display", "brand"),
}
MOBILE_RU = ("903", "905", "909", "915", "916", "925", "926", "977", "985", "999")

TRANSLIT = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    ("a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
     "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"),
    strict=True,
))

# fmt: on

PROFILES = {p[0]: p[6] for p in PRODUCTS}
TOPICS = {p[0]: p[7] for p in PRODUCTS}


def translit(text: str) -> str:
    out = "".join(TRANSLIT.get(ch, ch) for ch in text.lower())
    return out.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae").replace("ß", "ss")


# --- state check ----------------------------------------------------------------------------------


def existing_data_reason() -> str | None:
    """Why seeding must not run, or None for a database the demo may be written into."""
    if Company.objects.filter(inn=COMPANY["inn"], legal_name=COMPANY["legal_name"]).exists():
        return ALREADY_PRESENT
    if Deal.objects.exists():
        return ALREADY_PRESENT
    found = {
        "companies": Company.objects.count(),
        "clients": Client.objects.count(),
        "invoices": Invoice.objects.count(),
        "payments": Payment.objects.count(),
    }
    found = {k: v for k, v in found.items() if v}
    if found:
        listed = ", ".join(f"{v} {k}" for k, v in found.items())
        return (
            f"Existing data found ({listed}); demo data is only seeded into an empty database. Nothing to do."
        )
    return None


# --- generation -----------------------------------------------------------------------------------


@dataclass
class Clock:
    """Every date derives from ``today``; every timestamp is before its midnight."""

    today: dt.date
    start: dt.date
    tz: dt.tzinfo

    @property
    def now(self) -> dt.datetime:
        return dt.datetime.combine(self.today, dt.time(0, 0), tzinfo=self.tz)

    def at(self, rng: random.Random, day: dt.date) -> dt.datetime:
        """A moment within office hours (09:00-17:59) of ``day``."""
        return dt.datetime.combine(
            day, dt.time(rng.randint(9, 17), rng.randint(0, 59), rng.randint(0, 59)), tzinfo=self.tz
        )

    def day_with_growth(self, rng: random.Random, lo: dt.date | None = None) -> dt.date:
        """A working day in [lo, today), twice as likely at the end as at the start (a growing business)."""
        lo = lo or self.start
        span = (self.today - lo).days
        u = rng.random()
        t = -1 + math.sqrt(1 + 3 * u)  # inverse CDF of the density (1 + t) / 1.5 on [0, 1]
        day = lo + dt.timedelta(days=min(span - 1, int(t * span)))
        if day.weekday() >= 5:
            back = day - dt.timedelta(days=day.weekday() - 4)
            day = back if back >= lo else day
        return day


def _months(today: dt.date) -> list[dt.date]:
    first = today.replace(day=1)
    months = []
    y, m = first.year, first.month
    for _ in range(MONTHS):
        months.append(dt.date(y, m, 1))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return months[::-1]


def _stamp(obj, created: dt.datetime, updated: dt.datetime | None = None):
    obj._demo_created, obj._demo_updated = created, updated or created
    return obj


def _bulk(model, objs: Sequence, fields: Sequence[str] = ("created_at", "updated_at")) -> None:
    """``bulk_create``, then put back the timestamps that ``auto_now[_add]`` overwrote."""
    model.objects.bulk_create(objs, batch_size=BATCH)
    if not fields or not objs:
        return
    for obj in objs:
        obj.created_at = obj._demo_created
        if "updated_at" in fields:
            obj.updated_at = obj._demo_updated
    model.objects.bulk_update(objs, list(fields), batch_size=BATCH)


def _phone(rng: random.Random, country: str, prefixes: Sequence[str], digits: int) -> str:
    """A random number that ``phonenumbers`` accepts as valid, in E.164."""
    code = {"RU": "7", "KZ": "7", "DE": "49", "US": "1", "GB": "44"}[country]
    for _ in range(100):
        prefix = rng.choice(prefixes)
        rest = "".join(str(rng.randint(0, 9)) for _ in range(digits - len(prefix)))
        candidate = f"+{code}{prefix}{rest}"
        parsed = phonenumbers.parse(candidate)
        if phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(parsed) == country:
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    raise RuntimeError(f"no valid phone number for {country} {prefixes}")  # pragma: no cover


def _foreign_tax_id(rng: random.Random, country: str) -> str:
    if country == "DE":  # USt-IdNr: DE + 8 digits + ISO 7064 mod 11,10 check digit
        body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(7))
        product = 10
        for d in body:
            s = (int(d) + product) % 10 or 10
            product = (2 * s) % 11
        return f"DE{body}{(11 - product) % 10}"
    if country == "GB":  # VAT: 7 digits + 2 check digits, weighted sum ≡ 0 (mod 97)
        body = "".join(str(rng.randint(0, 9)) for _ in range(7))
        total = sum(int(d) * w for d, w in zip(body, (8, 7, 6, 5, 4, 3, 2), strict=True))
        return f"GB{body}{(-total) % 97:02d}"
    if country == "US":  # EIN
        return f"{rng.choice(('12', '27', '46', '81', '95'))}-{rng.randint(1_000_000, 9_999_999)}"
    return (
        f"{rng.randint(10, 99):02d}0{rng.randint(1, 4)}40{rng.randint(100_000, 999_999)}"  # KZ BIN, 12 digits
    )


def _person(rng: random.Random) -> tuple[str, str, str, bool]:
    female = rng.random() < 0.45
    last = rng.choice(RU_LAST) + ("а" if female else "")
    first = rng.choice(RU_FIRST_F if female else RU_FIRST_M)
    middle = rng.choice(RU_PATRONYMICS)[1 if female else 0]
    return last, first, middle, female


def _quantity(rng: random.Random, profile: str) -> Decimal:
    if profile == "hours":
        return Decimal(rng.choice((4, 6, 8, 12, 16, 20, 24, 32, 40, 60, 80, 7.5, 12.5)))
    if profile == "seats":
        return Decimal(rng.choice((1, 2, 3, 5, 5, 10, 10, 15, 20, 25, 40)))
    if profile == "months":
        return Decimal(rng.choice((1, 3, 6, 6, 12, 12)))
    if profile == "few":
        return Decimal(rng.randint(1, 4))
    if profile == "many":
        return Decimal(rng.choice((1, 2, 5, 10, 10, 20, 30, 50)))
    return Decimal(1)


def _round_down_100(value: Decimal) -> Decimal:
    return ((value / 100).to_integral_value(rounding=ROUND_DOWN) * 100).quantize(CENT)


@dataclass
class _World:
    """What later steps draw from: the reference rows written first."""

    rng: random.Random
    clock: Clock
    company: Company
    managers: list
    pipeline: Pipeline
    stages: dict[str, Stage]
    channels: list[Channel]
    channel_weights: list[int]
    products: list[Product]

    def pick_channel(self) -> Channel:
        return self.rng.choices(self.channels, self.channel_weights)[0]


def _seed_reference(rng: random.Random, clock: Clock, counts: dict[str, int]) -> _World:
    """Own company, managers, pipeline and stages, channels, products."""
    setup_at = clock.at(rng, clock.start - dt.timedelta(days=30))
    company = _stamp(Company(is_default=True, **COMPANY), setup_at)
    _bulk(Company, [company])

    user_model = get_user_model()
    usernames = [m[0] for m in MANAGERS]
    existing = set(user_model.objects.filter(username__in=usernames).values_list("username", flat=True))
    new_users = [
        user_model(
            username=username,
            first_name=first,
            last_name=last,
            email=f"{username}@demo-hub.example",
            is_staff=True,
            is_active=True,
            date_joined=setup_at,
            # Unusable, and the same on every run: an administrator sets a password to log in as one.
            password=f"{UNUSABLE_PASSWORD_PREFIX}demo-manager",
        )
        for username, first, last in MANAGERS
        if username not in existing
    ]
    user_model.objects.bulk_create(new_users)
    by_name = user_model.objects.in_bulk(usernames, field_name="username")
    managers = [by_name[u] for u in usernames]
    group = Group.objects.filter(name=MANAGER_GROUP).first()
    if group is not None:
        group.user_set.add(*managers)
    counts["managers"] = len(new_users)

    pipeline = _stamp(
        Pipeline(name=PIPELINE_NAME, is_default=not Pipeline.objects.filter(is_default=True).exists()),
        setup_at,
    )
    _bulk(Pipeline, [pipeline])
    stages = {
        code: _stamp(
            Stage(
                pipeline=pipeline, code=code, name=name, order=i, is_won=won, is_lost=lost, probability=prob
            ),
            setup_at,
        )
        for i, (code, name, won, lost, prob) in enumerate(STAGES, start=1)
    }
    _bulk(Stage, list(stages.values()))

    known = Channel.objects.in_bulk([c[0] for c in CHANNELS], field_name="code")
    channels = [
        known.get(code) or _stamp(Channel(code=code, name=name), setup_at) for code, name, *_ in CHANNELS
    ]
    _bulk(Channel, [c for c in channels if c.pk is None])
    counts["channels"] = len(channels) - len(known)

    products = [
        _stamp(
            Product(
                sku=sku,
                name=name,
                unit=unit,
                price=Decimal(price).quantize(CENT),
                unit_cost=Decimal(cost).quantize(CENT),
                currency="RUB",
                vat_rate=Decimal(vat).quantize(CENT),
            ),
            setup_at,
        )
        for sku, name, unit, price, cost, vat, *_ in PRODUCTS
    ]
    _bulk(Product, products)
    counts["products"] = len(products)
    return _World(
        rng=rng,
        clock=clock,
        company=company,
        managers=managers,
        pipeline=pipeline,
        stages=stages,
        channels=channels,
        channel_weights=[c[2] for c in CHANNELS],
        products=products,
    )


def _seed_spend(w: _World, months: list[dt.date]) -> int:
    """One row per channel and month; the current month only so far."""
    rng, today = w.rng, w.clock.today
    rows = []
    for channel, (_, _, _, (lo, hi)) in zip(w.channels, CHANNELS, strict=True):
        for i, month in enumerate(months):
            amount = rng.randint(lo, hi) * (1 + i / (2 * MONTHS))  # budgets grow with the business
            if channel.code == "exhibition" and month.month in EXHIBITION_MONTHS:
                amount = rng.randint(350_000, 650_000)
            if month == months[-1]:
                amount = amount * today.day / calendar.monthrange(month.year, month.month)[1]
            entered = w.clock.at(
                rng, min(month + dt.timedelta(days=rng.randint(1, 5)), today - dt.timedelta(days=1))
            )
            rows.append(
                _stamp(
                    MarketingSpend(
                        channel=channel,
                        month=month,
                        currency="RUB",
                        amount=Decimal(int(amount // 100) * 100).quantize(CENT),
                    ),
                    entered,
                )
            )
    _bulk(MarketingSpend, rows)
    return len(rows)


def _foreign_client(w: _World, used_names: set[str]) -> tuple[Client, str]:
    rng = w.rng
    country = rng.choice(FOREIGN_COUNTRIES)
    spec = FOREIGN[country]
    while True:
        base = f"{rng.choice(spec['names'][0])} {rng.choice(spec['names'][1])}"
        if base not in used_names:
            used_names.add(base)
            break
    if country == "KZ":
        name = f"{spec['form']} «{base}»"
        domain = f"{translit(base).replace(' ', '-')}.kz.example"
        phone = _phone(rng, "KZ", ("701", "702", "705", "707", "747", "727", "7172"), 10)
    else:
        name = f"{base} {spec['form']}"
        domain = f"{translit(base).replace(' ', '-')}.example"
        prefixes, digits = {
            "DE": (("30", "89", "211", "151", "160"), 11),
            "US": (("212", "415", "512", "646"), 10),
            "GB": (("207", "161", "131"), 10),
        }[country]
        phone = _phone(rng, country, prefixes, digits)
    address = f"{rng.choice(spec['address']).format(n=rng.randint(1, 250))}, {spec['country_name']}"
    client = Client(
        kind=ClientKind.COMPANY,
        name=name,
        legal_name=name,
        country=country,
        foreign_tax_id=_foreign_tax_id(rng, country),
        email=f"office@{domain}",
        phone=phone,
        address=address,
    )
    return client, domain


def _russian_client(
    w: _World, kind: str, used_inns: set[str], names: list, brands: list
) -> tuple[Client, str]:
    rng = w.rng
    code, inspections, city, postcodes, areas, streets = rng.choices(REGIONS, REGION_WEIGHTS)[0]
    inspection = rng.choice(inspections)
    address = f"{rng.randint(*postcodes)}, {city}, {rng.choice(streets)}, д. {rng.randint(1, 120)}"
    year = rng.randint(2005, max(2005, min(2023, w.clock.today.year - 1))) % 100

    def unique(make) -> str:
        while (value := make()) in used_inns:
            pass
        used_inns.add(value)
        return value

    if kind == "person":
        last, first, middle, _ = _person(rng)
        inn = unique(lambda: inn_person(f"{code}{inspection}{rng.randint(0, 999_999):06d}"))
        number = None
        while number is None:
            number = ogrnip(f"3{year:02d}{code}{rng.randint(0, 10**9 - 1):09d}")
        domain = f"{translit(last)}-{translit(first[0])}.example"
        client = Client(
            kind=ClientKind.PERSON,
            name=f"ИП {last} {first[0]}. {middle[0]}.",
            legal_name=f"Индивидуальный предприниматель {last} {first} {middle}",
            inn=inn,
            ogrn=number,
            email=f"{translit(first)}.{translit(last)}@{domain}",
            phone=_phone(rng, "RU", MOBILE_RU, 10),
            address=address,
        )
        return client, domain
    if rng.random() < 0.15 and brands:
        display, registered, slug = brands.pop()
    else:
        (root, root_lat), (suffix, suffix_lat) = names.pop()
        display = registered = f"{root}-{suffix}"
        slug = f"{root_lat}-{suffix_lat}"
    form = "АО" if rng.random() < 0.1 else "ООО"
    inn = unique(lambda: inn_company(f"{code}{inspection}{rng.randint(0, 99_999):05d}"))
    office = f", офис {rng.randint(1, 40) * 10 + rng.randint(1, 9)}" if rng.random() < 0.7 else ""
    client = Client(
        kind=ClientKind.COMPANY,
        name=display,
        legal_name=f"{form} «{registered}»",
        inn=inn,
        kpp=f"{inn[:4]}01001",
        ogrn=ogrn(f"1{year:02d}{code}{inspection}{rng.randint(0, 99_999):05d}"),
        email=f"{rng.choice(('info', 'office', 'sales', 'buh'))}@{slug}.example",
        phone=_phone(rng, "RU", areas, 10),
        address=address + office,
        vat_mode=VatMode.INCLUDED if rng.random() < 0.1 else "",
    )
    return client, f"{slug}.example"


def _contacts_of(w: _World, client: Client, domain: str) -> list[Contact]:
    rng = w.rng
    contacts = []
    for n in range(rng.choice((1, 1, 2))):
        if client.country in ("RU", "KZ"):
            last, first, middle, _ = _person(rng)
            position = rng.choice(RU_POSITIONS)
            if client.kind == ClientKind.PERSON and n == 0:  # the entrepreneur himself
                last, first, middle = client.legal_name.split()[-3:]
                position = "Индивидуальный предприниматель"
            mobile = MOBILE_RU if client.country == "RU" else ("701", "705", "777")
            phone = _phone(rng, client.country, mobile, 10)
        else:
            last, first, middle = rng.choice(EN_LAST), rng.choice(EN_FIRST), ""
            position, phone = rng.choice(EN_POSITIONS), client.phone
        contacts.append(
            _stamp(
                Contact(
                    client=client,
                    last_name=last,
                    first_name=first,
                    middle_name=middle,
                    position=position,
                    email=f"{translit(first)[0]}.{translit(last)}@{domain}",
                    phone=phone,
                    is_primary=n == 0,
                ),
                client._demo_created,
                client._demo_updated,
            )
        )
    return contacts


def _seed_clients(w: _World, counts: dict[str, int]) -> list[Client]:
    """Clients (10% foreign, 15% sole traders, the rest Russian companies) and their contacts."""
    rng, clock = w.rng, w.clock
    n_foreign, n_person = N_CLIENTS // 10, N_CLIENTS * 3 // 20
    kinds = ["foreign"] * n_foreign + ["person"] * n_person + ["company"] * (N_CLIENTS - n_foreign - n_person)
    rng.shuffle(kinds)
    days = sorted(clock.day_with_growth(rng) for _ in kinds)
    names = [(r, s) for r in COMPANY_ROOTS for s in COMPANY_SUFFIXES]
    rng.shuffle(names)
    brands = list(LATIN_BRANDS)
    rng.shuffle(brands)
    used_inns: set[str] = {COMPANY["inn"]}
    used_names: set[str] = set()

    clients, domains = [], []
    for kind, day in zip(kinds, days, strict=True):
        created = clock.at(rng, day)
        manager, channel = rng.choice(w.managers), w.pick_channel()
        if kind == "foreign":
            client, domain = _foreign_client(w, used_names)
        else:
            client, domain = _russian_client(w, kind, used_inns, names, brands)
        client.manager, client.channel = manager, channel
        touched = min(clock.now - dt.timedelta(minutes=1), created + dt.timedelta(days=rng.randint(0, 60)))
        clients.append(_stamp(client, created, touched))
        domains.append(domain)
    _bulk(Client, clients)
    contacts = [
        c for client, domain in zip(clients, domains, strict=True) for c in _contacts_of(w, client, domain)
    ]
    _bulk(Contact, contacts)
    counts["clients"], counts["contacts"] = len(clients), len(contacts)
    return clients


RU_VAT_22_FROM = dt.date(2026, 1, 1)  # Federal Law 425-FZ; 20 % before


def _vat_on(rate: Decimal, day: dt.date) -> Decimal:
    """The standard Russian rate in force on ``day``: deals of 2025 carry 20 %, not today's 22 %."""
    if rate == Decimal("22") and day < RU_VAT_22_FROM:
        return Decimal("20.00")
    return rate


def _deal_lines(w: _World, vat_mode: str, day: dt.date) -> list[DealLine]:
    rng = w.rng
    lines = []
    for pos, product in enumerate(
        rng.sample(w.products, rng.choices((1, 2, 3, 4), (40, 30, 20, 10))[0]), start=1
    ):
        quantity = _quantity(rng, PROFILES[product.sku]).quantize(Decimal("0.001"))
        discount = Decimal(rng.choice((5, 10, 15, 20)) if rng.random() < 0.25 else 0).quantize(CENT)
        vat_rate = _vat_on(product.vat_rate, day)
        totals = line_totals(
            quantity=quantity,
            unit_price=product.price,
            discount_pct=discount,
            vat_rate=vat_rate,
            unit_cost=product.unit_cost,
            vat_mode=vat_mode,
        )
        lines.append(
            DealLine(
                position=pos,
                product=product,
                description=product.name,
                unit=product.unit,
                quantity=quantity,
                unit_price=product.price,
                discount_pct=discount,
                vat_rate=vat_rate,
                unit_cost=product.unit_cost,
                amount_net=totals.amount_net,
                vat_amount=totals.vat_amount,
                amount_total=totals.amount_total,
                cost_total=totals.cost_total,
            )
        )
    return lines


def _utm(rng: random.Random, channel: Channel, created: dt.datetime) -> dict[str, str]:
    if channel.code in UTM_CAMPAIGNS and rng.random() < 0.8:
        source = "yandex" if channel.code == "yandex-direct" else "google"
        return {
            "utm_source": source,
            "utm_medium": "cpc",
            "utm_campaign": rng.choice(UTM_CAMPAIGNS[channel.code]),
        }
    if channel.code == "website-seo" and rng.random() < 0.5:
        return {"utm_source": rng.choice(("yandex", "google")), "utm_medium": "organic"}
    if channel.code == "exhibition" and rng.random() < 0.4:
        return {"utm_source": "expo", "utm_medium": "offline", "utm_campaign": f"expo-{created.year}"}
    if channel.code == "referral" and rng.random() < 0.3:
        return {"utm_source": "partner", "utm_medium": "referral"}
    return {}


def _seed_deals(
    w: _World, clients: list[Client], counts: dict[str, int]
) -> list[tuple[Deal, list[DealLine]]]:
    """Every client's first deal comes with the client; the others go to clients known by then.

    The older a deal, the likelier it is closed: about 35% end won, 20% lost, the rest are open.
    """
    rng, clock, today = w.rng, w.clock, w.clock.today
    plans: list[tuple[dt.datetime, int, bool]] = []  # (created, client index, first deal?)
    for i, client in enumerate(clients):
        first_at = client._demo_created + dt.timedelta(minutes=rng.randint(10, 3 * 24 * 60))
        plans.append((min(first_at, clock.now - dt.timedelta(minutes=1)), i, True))
    client_created = [c._demo_created for c in clients]
    while len(plans) < N_DEALS:
        created = clock.at(rng, clock.day_with_growth(rng))
        known = bisect.bisect_left(client_created, created)
        if known:
            plans.append((created, rng.randrange(known), False))
    plans.sort(key=lambda p: (p[0], p[1]))

    open_stages = [w.stages[c] for c in ("new", "qualified", "proposal", "negotiation")]
    per_client: dict[int, int] = {}
    result = []
    for created, ci, first_deal in plans:
        client = clients[ci]
        age = (today - created.date()).days
        p_open = 0.92 if age < 30 else 0.72 if age < 90 else 0.45 if age < 180 else 0.27
        status, closed_at = DealStatus.OPEN, None
        if age >= 3 and rng.random() >= p_open:
            status = DealStatus.WON if rng.random() < 0.63 else DealStatus.LOST
            close_day = created.date() + dt.timedelta(days=rng.randint(1, min(age - 1, 90)))
            if close_day.weekday() >= 5 and close_day + dt.timedelta(days=2) < today:
                close_day += dt.timedelta(days=7 - close_day.weekday())
            closed_at = clock.at(rng, close_day)
        if status == DealStatus.OPEN:
            stage = rng.choices(open_stages, (5, 3, 1, 1) if age < 14 else (2, 3, 3, 2))[0]
        else:
            stage = w.stages["won" if status == DealStatus.WON else "lost"]
        channel = client.channel if first_deal or rng.random() < 0.85 else w.pick_channel()
        vat_mode = client.vat_mode or w.company.vat_mode
        lines = _deal_lines(w, vat_mode, (closed_at or created).date())
        totals = document_totals(lines)
        topic = TOPICS[max(lines, key=lambda ln: ln.amount_total).product.sku][
            0 if client.country in ("RU", "KZ") else 1
        ]
        per_client[ci] = per_client.get(ci, 0) + 1
        title = f"{topic} — {client.name}" + (f" #{per_client[ci]}" if per_client[ci] > 1 else "")
        deal = Deal(
            title=title[:255],
            client=client,
            company=w.company,
            pipeline=w.pipeline,
            stage=stage,
            status=status,
            manager=client.manager,
            channel=channel,
            currency="RUB",
            vat_mode=vat_mode,
            expected_close_date=created.date() + dt.timedelta(days=rng.randint(14, 60)),
            amount_net=totals.amount_net,
            vat_amount=totals.vat_amount,
            amount_total=totals.amount_total,
            cost_total=totals.cost_total,
            won_at=closed_at if status == DealStatus.WON else None,
            lost_at=closed_at if status == DealStatus.LOST else None,
            lost_reason=rng.choice(LOST_REASONS) if status == DealStatus.LOST else "",
            **_utm(rng, channel, created),
        )
        touched = closed_at or min(
            clock.now - dt.timedelta(minutes=1),
            created + dt.timedelta(days=rng.randint(0, max(0, min(age - 1, 30)))),
        )
        result.append((_stamp(deal, created, max(created, touched)), lines))

    _bulk(Deal, [deal for deal, _ in result])
    for deal, lines in result:
        for line in lines:
            line.deal = deal
    all_lines = [line for _, lines in result for line in lines]
    DealLine.objects.bulk_create(all_lines, batch_size=BATCH)
    counts["deals"], counts["deal lines"] = len(result), len(all_lines)
    return result


def _plan_invoices(
    w: _World, deals: list[tuple[Deal, list[DealLine]]]
) -> tuple[list[Invoice], list[InvoiceLine]]:
    """Invoices for about 92% of won deals, issued on the day of winning or soon after.

    Numbered gaplessly per year in order of issue, as ``invoicing.services.invoice_issue`` numbers them.
    """
    rng, clock = w.rng, w.clock
    planned: list[tuple[Invoice, list[DealLine]]] = []
    for deal, lines in deals:
        if deal.status != DealStatus.WON or rng.random() >= 0.92:
            continue
        won_day = timezone.localtime(deal.won_at, clock.tz).date()
        delay = rng.choice((0, 0, 0, 1, 1, 2))
        if delay and won_day + dt.timedelta(days=delay) < clock.today:
            issued_at = clock.at(rng, won_day + dt.timedelta(days=delay))
        else:
            issued_at = deal.won_at + dt.timedelta(
                minutes=rng.randint(15, 300)
            )  # the same evening at the latest
        if timezone.localtime(issued_at, clock.tz).year != won_day.year:
            issued_at = deal.won_at  # never across New Year: the lines carry the rate of the won day
        invoice = Invoice(
            company=w.company,
            client=deal.client,
            deal=deal,
            currency=deal.currency,
            vat_mode=deal.vat_mode,
            amount_net=deal.amount_net,
            vat_amount=deal.vat_amount,
            amount_total=deal.amount_total,
            cost_total=deal.cost_total,
            issued_at=issued_at,
            issue_date=timezone.localtime(issued_at, clock.tz).date(),
            created_by=deal.manager,
        )
        planned.append((invoice, lines))
    planned.sort(key=lambda p: p[0].issued_at)

    last_numbers: dict[int, int] = {}
    invoices, invoice_lines = [], []
    for invoice, lines in planned:
        year = invoice.issue_date.year
        number = last_numbers[year] = last_numbers.get(year, 0) + 1
        invoice.sequence_year, invoice.sequence_number, invoice.number = year, number, f"{year}-{number:05d}"
        invoice.due_date = invoice.issue_date + dt.timedelta(days=rng.randint(5, 14))
        invoice.purpose = f"Оплата по счёту № {invoice.number} от {invoice.issue_date:%d.%m.%Y}"
        invoices.append(invoice)
        invoice_lines.extend(
            InvoiceLine(
                invoice=invoice,
                position=ln.position,
                product=ln.product,
                description=ln.description,
                unit=ln.unit,
                quantity=ln.quantity,
                unit_price=ln.unit_price,
                discount_pct=ln.discount_pct,
                vat_rate=ln.vat_rate,
                unit_cost=ln.unit_cost,
                amount_net=ln.amount_net,
                vat_amount=ln.vat_amount,
                amount_total=ln.amount_total,
                cost_total=ln.cost_total,
            )
            for ln in lines
        )
    return invoices, invoice_lines


def _payment_plan(rng: random.Random, invoice: Invoice) -> list[tuple[dt.date, Decimal, Decimal]]:
    """(day, amount, allocated) of the payments a client makes for an invoice, today or not."""
    term = (invoice.due_date - invoice.issue_date).days
    total = invoice.amount_total

    def pay_day(after: dt.date) -> dt.date:
        r = rng.random()
        late = (
            rng.randint(1, term)
            if r < 0.65
            else term + rng.randint(1, 20)
            if r < 0.9
            else term + rng.randint(21, 60)
        )
        return after + dt.timedelta(days=late)

    r = rng.random()
    if r < 0.07:  # never paid
        return []
    if r < 0.15:  # a part, the rest still owed
        part = _round_down_100(total * rng.randint(30, 70) / 100)
        part = part if 0 < part < total else money(total / 2)
        return [(pay_day(invoice.issue_date), part, part)]
    if r < 0.25:  # two instalments
        half = _round_down_100(total / 2)
        half = half if 0 < half < total else money(total / 2)
        day = pay_day(invoice.issue_date)
        return [(day, half, half), (day + dt.timedelta(days=rng.randint(5, 30)), total - half, total - half)]
    if r < 0.28:  # rounded up: the excess stays unallocated on the payment
        rounded = ((total / 1000).to_integral_value(rounding=ROUND_CEILING) * 1000 + 1000).quantize(CENT)
        return [(pay_day(invoice.issue_date), rounded, total)]
    return [(pay_day(invoice.issue_date), total, total)]


def _seed_invoices_and_payments(w: _World, deals, clients: list[Client], counts: dict[str, int]) -> None:
    """Invoices, bank payments received before today, their allocations, and the statuses they imply."""
    rng, clock = w.rng, w.clock
    invoices, invoice_lines = _plan_invoices(w, deals)

    received: list[tuple[Payment, Invoice | None, Decimal]] = []  # (payment, invoice, allocated)
    for invoice in invoices:
        for day, amount, allocated in _payment_plan(rng, invoice):
            if day >= clock.today:
                break
            vat = money(invoice.vat_amount * allocated / invoice.amount_total)
            vat_text = f"в т.ч. НДС {vat:.2f} руб." if invoice.vat_amount else "НДС не облагается"
            payment = Payment(
                company=w.company,
                client=invoice.client,
                source=PaymentSource.BANK,
                amount=amount,
                currency=invoice.currency,
                received_at=clock.at(rng, day),
                payer_name=invoice.client.legal_name or invoice.client.name,
                payer_inn=invoice.client.inn,
                purpose=f"Оплата по счёту № {invoice.number} от {invoice.issue_date:%d.%m.%Y}, {vat_text}",
            )
            received.append((payment, invoice, allocated))
    russian = [c for c in clients if c.country == "RU"]
    for n in range(5):  # advances on the bank statement that match no invoice yet
        client = rng.choice(russian)
        day = clock.today - dt.timedelta(days=rng.randint(1, 20))
        amount = Decimal(rng.randint(10, 100) * 1000).quantize(CENT)
        payment = Payment(
            company=w.company,
            client=client,
            source=PaymentSource.BANK,
            amount=amount,
            currency="RUB",
            received_at=clock.at(rng, day),
            payer_name=client.legal_name or client.name,
            payer_inn=client.inn,
            purpose=f"Предоплата по договору № Д-{100 + n}/{day:%y} от {day:%d.%m.%Y}, "
            f"в т.ч. НДС {money(amount * 22 / 122):.2f} руб.",
        )
        received.append((payment, None, Decimal("0.00")))
    received.sort(key=lambda p: p[0].received_at)

    payments, allocations = [], []
    history: dict[int, list[tuple[Decimal, dt.datetime]]] = {}
    for n, (payment, invoice, allocated) in enumerate(received, start=1):
        payment.external_id = f"bank:{n}"
        payment.amount_allocated = allocated
        payment.status = (
            PaymentStatus.UNALLOCATED
            if not allocated
            else PaymentStatus.ALLOCATED
            if allocated == payment.amount
            else PaymentStatus.PARTIALLY_ALLOCATED
        )
        payments.append(_stamp(payment, payment.received_at))
        if invoice is not None:
            at = payment.received_at + dt.timedelta(minutes=rng.randint(1, 90))
            allocations.append(
                _stamp(PaymentAllocation(payment=payment, invoice=invoice, amount=allocated), at)
            )
            history.setdefault(id(invoice), []).append((allocated, at))

    for invoice in invoices:
        paid = history.get(id(invoice), [])
        invoice.amount_paid = sum((amount for amount, _ in paid), Decimal("0.00"))
        last_paid = max((at for _, at in paid), default=None)
        if invoice.amount_paid == invoice.amount_total:
            invoice.status, invoice.paid_at = InvoiceStatus.PAID, last_paid
        elif invoice.amount_paid:
            invoice.status = InvoiceStatus.PARTIALLY_PAID
        else:
            invoice.status = InvoiceStatus.SENT if rng.random() < 0.9 else InvoiceStatus.ISSUED
        sent_at = invoice.issued_at + dt.timedelta(minutes=rng.randint(1, 120))
        invoice.sent_at = sent_at if invoice.status != InvoiceStatus.ISSUED else None
        drafted = invoice.issued_at - dt.timedelta(minutes=rng.randint(2, 30))
        _stamp(invoice, drafted, last_paid or invoice.sent_at or invoice.issued_at)

    _bulk(Invoice, invoices)
    InvoiceLine.objects.bulk_create(invoice_lines, batch_size=BATCH)
    years: dict[int, int] = {}
    for invoice in invoices:
        years[invoice.sequence_year] = max(years.get(invoice.sequence_year, 0), invoice.sequence_number)
    NumberSequence.objects.bulk_create(
        [
            NumberSequence(company=w.company, prefix="", year=year, last_number=n)
            for year, n in sorted(years.items())
        ]
    )
    _bulk(Payment, payments)
    _bulk(PaymentAllocation, allocations, fields=("created_at",))
    counts["invoices"], counts["payments"], counts["allocations"] = (
        len(invoices),
        len(payments),
        len(allocations),
    )


def seed_demo(*, today: dt.date, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Write the demo data (call ``existing_data_reason`` first); return the number of rows per kind."""
    rng = random.Random(seed)
    months = _months(today)
    clock = Clock(today=today, start=months[0], tz=timezone.get_default_timezone())
    counts: dict[str, int] = {}
    with transaction.atomic():
        world = _seed_reference(rng, clock, counts)
        counts["spend rows"] = _seed_spend(world, months)
        clients = _seed_clients(world, counts)
        deals = _seed_deals(world, clients, counts)
        _seed_invoices_and_payments(world, deals, clients, counts)
    return counts
