"""Russian for the manager UI: ``python locale/ru_ui.py`` fills these into locale/ru/LC_MESSAGES/django.po
after ``manage.py makemessages -l ru`` (entries already translated are left alone), then
``manage.py compilemessages`` builds the .mo. Kept as data so a translator can also edit the .po."""

from __future__ import annotations

import re
import sys
from pathlib import Path

RU = {
    "Address": "Адрес",
    "All payments": "Все платежи",
    "Allocated": "Разнесено",
    "Allocations": "Разнесение оплат",
    "Amount": "Сумма",
    "Amount due": "К оплате",
    "Applied to": "Зачтён в",
    "Apply": "Применить",
    "Apply to this invoice": "Зачесть в этот счёт",
    "Archived": "В архиве",
    "Balance (unallocated payments)": "Аванс (неразнесённые платежи)",
    "Board": "Доска",
    "CAC": "CAC",
    "CAC and LTV by channel": "CAC и LTV по каналам",
    "CRM hub": "CRM-хаб",
    "Channel": "Канал",
    "Choose a date between %(a)s and %(b)s.": "Выберите дату между %(a)s и %(b)s.",
    "Client": "Клиент",
    "Client since": "Клиент с",
    "Clients": "Клиенты",
    "Cohort": "Когорта",
    "Cohorts: share of clients paying, by months since the first payment": "Когорты: доля платящих клиентов по месяцам с первой оплаты",
    "Confirm": "Подтвердить",
    "Conflicts": "Конфликты",
    "Connection": "Подключение",
    "Contacts": "Контакты",
    "Conversion to next": "Конверсия в следующий",
    "Cost": "Себестоимость",
    "Cost of goods": "Себестоимость",
    "Country": "Страна",
    "Credit note": "Корректировочный счёт",
    "Dashboards": "Аналитика",
    "Date": "Дата",
    "Days since issue": "Дней с выставления",
    "Deal": "Сделка",
    "Deals": "Сделки",
    "Deals reached": "Дошло сделок",
    "Deals waiting for an invoice": "Сделки без счёта",
    "Debt": "Долг",
    "Decide": "Решение",
    "Description": "Описание",
    "Discount": "Скидка",
    "Documents in several currencies: the sums above add nominal amounts.": "Документы в нескольких валютах: суммы выше складывают номиналы.",
    "Download PDF": "Скачать PDF",
    "Drag a card to another column, or choose the stage in the card and press Move.": "Перетащите карточку в другую колонку или выберите этап в карточке и нажмите «Перенести».",
    "Due": "К оплате",
    "Due date": "Срок оплаты",
    "E-mail": "Эл. почта",
    "E-mails": "Письма",
    "Empty: the client's e-mail.": "Пусто — адрес клиента.",
    "Every won deal is invoiced.": "По всем выигранным сделкам выставлены счета.",
    "External id": "Внешний id",
    "Find": "Найти",
    "First payment": "Первая оплата",
    "From": "С",
    "Funnel": "Воронка",
    "Gross profit": "Валовая прибыль",
    "Gross profit by month": "Валовая прибыль по месяцам",
    "Gross profit by month with the margin line": "Валовая прибыль по месяцам и линия маржи",
    "History": "История",
    "Home": "Главная",
    "Hub": "Хаб",
    "INN": "ИНН",
    "In other systems": "В других системах",
    "Inbox": "Уведомления",
    "Invoice": "Счёт",
    "Invoice %(number)s is issued.": "Счёт %(number)s выставлен.",
    "Invoice %(number)s is void.": "Счёт %(number)s аннулирован.",
    "Invoice number": "Номер счёта",
    "Invoice preview": "Предпросмотр счёта",
    "Invoiced (LTV revenue)": "Выставлено (выручка за всё время)",
    "Invoices": "Счета",
    "Invoices and payments": "Счета и оплаты",
    "Issue invoice": "Выставить счёт",
    "Issued / due date": "Выставлен / срок",
    "KPP": "КПП",
    "Kind": "Тип",
    "LTV (gross profit to date)": "LTV (валовая прибыль на сегодня)",
    "LTV (historical)": "LTV (фактический)",
    "LTV / CAC": "LTV / CAC",
    "Language": "Язык",
    "Last error": "Последняя ошибка",
    "Last run": "Последний запуск",
    "Last sync": "Последняя синхронизация",
    "Legal name": "Полное наименование",
    "Lifetime value": "Ценность клиента (LTV)",
    "Lines": "Позиции",
    "Main": "Главное меню",
    "Manager": "Менеджер",
    "Margin": "Маржа",
    "Margin, %%": "Маржа, %%",  # the template tag escapes % in the msgid
    "Mark all read": "Прочитать все",
    "Match confirmed.": "Сопоставление подтверждено.",
    "Money": "Деньги",
    "Month": "Месяц",
    "Move": "Перенести",
    "My notifications": "Мои уведомления",
    "Open deals": "Открытые сделки",
    "Name": "Название",
    "New clients": "Новые клиенты",
    "New paying clients": "Новые платящие клиенты",
    "New payments": "Новые платежи",
    "Next": "Далее",
    "No cohorts in the period.": "Нет когорт за период.",
    "No connections.": "Подключений нет.",
    "No contacts.": "Контактов нет.",
    "No data for the period.": "Нет данных за период.",
    "No deals.": "Сделок нет.",
    "No events yet.": "Событий пока нет.",
    "No invoices yet.": "Счетов пока нет.",
    "No invoices.": "Счетов нет.",
    "No lines.": "Позиций нет.",
    "No new payments.": "Новых платежей нет.",
    "No notifications.": "Уведомлений нет.",
    "No open deals.": "Открытых сделок нет.",
    "No open invoice has this number.": "Нет открытого счёта с таким номером.",
    "No payments applied yet.": "Оплат пока нет.",
    "No payments.": "Платежей нет.",
    "No unread notifications.": "Непрочитанных уведомлений нет.",
    "Not linked to any external system yet.": "Пока не связан ни с одной внешней системой.",
    "Nothing found.": "Ничего не найдено.",
    "Nothing overdue.": "Просрочек нет.",
    "Nothing waits for review.": "Нет платежей на проверке.",
    "Number": "Номер",
    "OGRN": "ОГРН",
    "Open issues": "Открытые проблемы",
    "Open the inbox": "Открыть уведомления",
    "Overdue invoices": "Просроченные счета",
    "Overdue only": "Только просроченные",
    "Pages": "Страницы",
    "Paid": "Оплачено",
    "Password": "Пароль",
    "Pay online link": "Ссылка на онлайн-оплату",
    "Payer": "Плательщик",
    "Payment": "Платёж",
    "Payment applied to invoice %(number)s.": "Платёж зачтён в счёт %(number)s.",
    "Payment history": "История платежей",
    "Payment received": "Платёж получен",
    "Payments": "Платежи",
    "Phone": "Телефон",
    "Pipeline": "Воронка продаж",
    "Preview": "Предпросмотр",
    "Previous": "Назад",
    "Price": "Цена",
    "Purpose": "Назначение",
    "Qty": "Кол-во",
    "Read": "Прочитано",
    "Reason": "Причина",
    "Receivables by age": "Дебиторка по срокам",
    "Received": "Получен",
    "Requisites": "Реквизиты",
    "Revenue": "Выручка",
    "Revenue (on issue)": "Выручка (по счетам)",
    "Revenue (paid)": "Выручка (по оплатам)",
    "Revenue without VAT": "Выручка без НДС",
    "Role": "Роль",
    "Search": "Поиск",
    "Show the figures": "Показать показатели",
    "Loading…": "Загрузка…",
    "Send by e-mail": "Отправить по почте",
    "Send to": "Кому",
    "Show": "Показать",
    "Show all": "Показать все",
    "Sign in": "Войти",
    "Sign out": "Выйти",
    "Skip to content": "К содержимому",
    "Source": "Источник",
    "Stage": "Этап",
    "State": "Состояние",
    "Status": "Статус",
    "Suggestion": "Предложение",
    "Sync": "Синхронизация",
    "Sync health": "Состояние синхронизации",
    "System": "Система",
    "Table": "Таблица",
    "Tax id": "Налоговый номер",
    "The end of the period is before its start.": "Конец периода раньше его начала.",
    "The invoice is queued for sending to %(to)s.": "Счёт поставлен в очередь на отправку: %(to)s.",
    "The invoice was not issued: %(reason)s": "Счёт не выставлен: %(reason)s",
    "The move was refused: %(reason)s": "Перенос отклонён: %(reason)s",
    "The move was refused: the board is out of date. It has been reloaded.": "Перенос отклонён: доска устарела. Она обновлена.",
    "The sync engine is not set up on this hub yet.": "Синхронизация на этом хабе ещё не настроена.",
    "To": "По",
    "Today": "Сегодня",
    "Top clients by gross profit": "Топ клиентов по валовой прибыли",
    "Top managers by gross profit": "Топ менеджеров по валовой прибыли",
    "Top products by gross profit": "Топ товаров по валовой прибыли",
    "Total": "Итого",
    "Unread only": "Только непрочитанные",
    "Updated": "Изменена",
    "User name": "Имя пользователя",
    "VAT": "НДС",
    "Void the invoice": "Аннулировать счёт",
    "Waiting for review": "Ждут проверки",
    "Win rate": "Доля выигранных",
    "Without VAT": "Без НДС",
    "Won from": "Выиграна с",
    "Won to": "Выиграна по",
    "all": "все",
    "amounts in": "суммы в",
    "archived": "в архиве",
    "change against the previous period of the same length": "изменение к предыдущему периоду той же длины",
    "due": "срок",
    "error": "ошибка",
    "last 24 hours": "за сутки",
    "manager": "менеджер",
    "ok": "в порядке",
    "overdue": "просрочен",
    "paused": "на паузе",
    "primary": "основной",
    "“%(deal)s” moved to %(stage)s.": "«%(deal)s» перенесена на этап «%(stage)s».",
    "“%(deal)s” was changed by someone else meanwhile; the move was refused. The board now shows its current stage.": "«%(deal)s» тем временем изменил кто-то другой; перенос отклонён. На доске показан её текущий этап.",
    "{{ n }} of {{ total }} shown": "показано {{ n }} из {{ total }}",
    "Page {{ n }} of {{ total }}": "Страница {{ n }} из {{ total }}",
    "Stage of": "Этап сделки",
    "%(n)s of %(total)s shown": "показано %(n)s из %(total)s",
    "Page %(n)s of %(total)s": "Страница %(n)s из %(total)s",
    "Stage of %(t)s": "Этап сделки %(t)s",
    # choices shown in the UI
    "Open": "Открыта",
    "Won": "Выиграна",
    "Lost": "Проиграна",
    "Draft": "Черновик",
    "Issued": "Выставлен",
    "Sent": "Отправлен",
    "Partially paid": "Оплачен частично",
    "Void": "Аннулирован",
    "Not allocated": "Не разнесён",
    "Partially allocated": "Разнесён частично",
    "Manual entry": "Вручную",
    "Bank statement": "Банковская выписка",
    "Accounting sync": "Из учётной системы",
    "Company": "Организация",
    "Person": "Физлицо",
    "Applied automatically": "Применено автоматически",
    "Confirmed by a person": "Подтверждено вручную",
    "Reassigned by a person": "Перезачтено вручную",
    "Dismissed": "Отклонено",
}

PLURALS = {
    "%(n)s month with payments": [
        "%(n)s месяц с оплатами",
        "%(n)s месяца с оплатами",
        "%(n)s месяцев с оплатами",
        "%(n)s месяца с оплатами",
    ],
    "%(n)s client": ["%(n)s клиент", "%(n)s клиента", "%(n)s клиентов", "%(n)s клиента"],
    "%(n)s deal": ["%(n)s сделка", "%(n)s сделки", "%(n)s сделок", "%(n)s сделки"],
}


def _unquote(lines: list[str]) -> str:
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', " ".join(lines))).replace('\\"', '"')


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fill(path: Path) -> int:
    entries = path.read_text(encoding="utf-8").split("\n\n")
    filled = 0
    out = []
    for entry in entries:
        lines = entry.split("\n")
        keys = [
            i for i, ln in enumerate(lines) if re.match(r"^(msgid|msgid_plural|msgstr(\[\d\])?|msgctxt) ", ln)
        ]
        if not keys:
            out.append(entry)
            continue
        parts: dict[str, list[str]] = {}
        head = lines[: keys[0]]
        for n, start in enumerate(keys):
            end = keys[n + 1] if n + 1 < len(keys) else len(lines)
            name, first = lines[start].split(" ", 1)
            parts[name] = [first, *lines[start + 1 : end]]
        msgid = _unquote(parts.get("msgid", []))
        if "#, fuzzy" in "\n".join(head) and (msgid in RU or msgid in PLURALS):
            # msgmerge's guess from a similar old string: ours is better.
            head = [ln for ln in head if ln != "#, fuzzy" and not ln.startswith("#|")]
            for name in [n for n in parts if n.startswith("msgstr")]:
                parts[name] = ['""']
        elif not msgid or "#, fuzzy" in "\n".join(head):
            out.append(entry)
            continue
        if "msgid_plural" in parts and msgid in PLURALS and not _unquote(parts.get("msgstr[0]", [])):
            body = [f"msgid {_quote(msgid)}", f"msgid_plural {_quote(_unquote(parts['msgid_plural']))}"]
            body += [f"msgstr[{i}] {_quote(t)}" for i, t in enumerate(PLURALS[msgid])]
            out.append("\n".join([*head, *body]))
            filled += 1
        elif "msgstr" in parts and msgid in RU and not _unquote(parts["msgstr"]):
            out.append("\n".join([*head, f"msgid {_quote(msgid)}", f"msgstr {_quote(RU[msgid])}"]))
            filled += 1
        else:
            out.append(entry)
    path.write_text("\n\n".join(out), encoding="utf-8")
    return filled


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "ru/LC_MESSAGES/django.po")
    print(f"filled {fill(target)} entries")
