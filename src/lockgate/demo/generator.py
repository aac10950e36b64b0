"""Synthetic support tickets for a bank's support desk, labelled with the queue they belong to.

The tickets are deterministic for a seed and deliberately messy: varied length and tone,
typos, tickets that touch two topics, off-topic ones labelled `other`, and personal data
(e-mail addresses, phone numbers, card numbers, IBANs) in some of them.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from lockgate.demo import templates as t

__all__ = ["QUEUES", "Ticket", "generate_tickets", "write_csv"]

_QUEUE_TEXT: Mapping[str, t.QueueText] = MappingProxyType(
    {
        "cards": t.CARDS,
        "payments": t.PAYMENTS,
        "transfers": t.TRANSFERS,
        "login_access": t.LOGIN_ACCESS,
        "fraud": t.FRAUD,
        "accounts": t.ACCOUNTS,
        "fees_refunds": t.FEES_REFUNDS,
        "loans": t.LOANS,
        "statements": t.STATEMENTS,
        "complaints": t.COMPLAINTS,
        "personal_details": t.PERSONAL_DETAILS,
        "mortgages": t.MORTGAGES,
        "savings": t.SAVINGS,
        "business_banking": t.BUSINESS_BANKING,
    }
)

QUEUES: tuple[str, ...] = (*_QUEUE_TEXT, "other")

# Relative frequencies of the real queues: the largest is three times the smallest.
_WEIGHTS: tuple[float, ...] = (12, 10, 10, 9, 8, 7, 7, 5, 5, 5, 5, 4, 4, 4)
_OTHER_SHARE = 0.08

# Topics that customers tend to mix up or mention together.
_NEIGHBOURS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "cards": ("fraud", "payments", "fees_refunds"),
        "payments": ("transfers", "cards", "fraud"),
        "transfers": ("payments", "fees_refunds", "fraud"),
        "login_access": ("accounts", "fraud", "complaints"),
        "fraud": ("cards", "payments", "login_access"),
        "accounts": ("fees_refunds", "personal_details", "savings"),
        "fees_refunds": ("complaints", "payments", "accounts"),
        "loans": ("mortgages", "accounts", "fees_refunds"),
        "statements": ("accounts", "fees_refunds", "personal_details"),
        "complaints": ("fees_refunds", "login_access", "transfers"),
        "personal_details": ("accounts", "login_access", "statements"),
        "mortgages": ("loans", "savings", "statements"),
        "savings": ("accounts", "transfers", "mortgages"),
        "business_banking": ("accounts", "loans", "cards"),
    }
)

# Queues whose tickets often quote a card number.
_CARD_QUEUES = frozenset({"cards", "fraud", "payments", "fees_refunds"})

_SLOT = re.compile(r"\{(\w+)\}")
_PUNCTUATION = re.compile(r"[.,!?;:']")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Ticket:
    id: str
    text: str
    queue: str


def generate_tickets(n: int, *, seed: int, id_prefix: str = "T") -> list[Ticket]:
    """Return `n` labelled tickets, the same ones for the same seed; ids run from 1."""
    rng = random.Random(seed)
    real_queues = QUEUES[:-1]
    tickets = []
    for i in range(1, n + 1):
        if rng.random() < _OTHER_SHARE:
            queue, text = "other", _other_text(rng)
        else:
            queue = rng.choices(real_queues, weights=_WEIGHTS)[0]
            text = _queue_text(rng, queue)
        tickets.append(Ticket(id=f"{id_prefix}{i:06d}", text=text, queue=queue))
    return tickets


def write_csv(tickets: Iterable[Ticket], path: Path | str, *, with_labels: bool = True) -> None:
    """Write tickets as CSV with a header: id,text and, with labels, queue."""
    fields = ["id", "text", "queue"] if with_labels else ["id", "text"]
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for ticket in tickets:
            row = [ticket.id, ticket.text]
            if with_labels:
                row.append(ticket.queue)
            writer.writerow(row)


def _queue_text(rng: random.Random, queue: str) -> str:
    roll = rng.random()
    if roll < 0.18:
        return _short_text(rng, queue)
    long = roll > 0.65
    text = _QUEUE_TEXT[queue]
    parts: list[str] = []
    if rng.random() < 0.55:
        parts.append(rng.choice(t.GREETINGS))
    if long and rng.random() < 0.5:
        parts.append(rng.choice(t.CONTEXT))
    parts.append(rng.choice(text.body))
    after_main = len(parts)
    if rng.random() < (0.7 if long else 0.3):
        parts.append(rng.choice(text.detail))
    if long and rng.random() < 0.35:
        parts.append(rng.choice(text.body))
    if rng.random() < 0.33:
        # A second topic, in passing or as a full request, after the main one (which labels it).
        other = _QUEUE_TEXT[rng.choice(_NEIGHBOURS[queue])]
        aside = other.mention if rng.random() < 0.4 else other.body
        parts.insert(rng.randint(after_main, len(parts)), rng.choice(aside))
    if rng.random() < (0.35 if long else 0.12):
        parts.append(rng.choice(t.TONE))
    if rng.random() < 0.6:
        parts.append(rng.choice(t.CLOSERS))
    if rng.random() < (0.5 if long else 0.2):
        parts.append(rng.choice(t.SIGN_OFFS))
    return _finish(rng, parts, _personal_data(rng, cards=queue in _CARD_QUEUES))


def _short_text(rng: random.Random, queue: str) -> str:
    """One line: the queue's own short form, a vague one shared with others, or a generic one."""
    kind = rng.random()
    if kind < 0.1:
        line = rng.choice(t.GENERIC)
    elif kind < 0.45:
        line = rng.choice(t.VAGUE[queue])
    else:
        line = rng.choice(_QUEUE_TEXT[queue].short)
    parts = [line]
    if rng.random() < 0.3:
        parts.append(rng.choice(t.TONE) if rng.random() < 0.5 else rng.choice(t.CLOSERS))
    return _finish(rng, parts, [])


def _other_text(rng: random.Random) -> str:
    parts: list[str] = []
    if rng.random() < 0.4:
        parts.append(rng.choice(t.GREETINGS))
    parts.append(rng.choice(t.GENERIC if rng.random() < 0.1 else t.OTHER_BODY))
    if rng.random() < 0.3:
        parts.append(rng.choice(t.OTHER_DETAIL))
    if rng.random() < 0.2:
        parts.append(rng.choice(t.SIGN_OFFS))
    return _finish(rng, parts, _personal_data(rng, scale=0.5))


def _personal_data(rng: random.Random, *, scale: float = 1.0, cards: bool = False) -> list[str]:
    sentences = []
    if rng.random() < 0.12 * scale:
        sentences.append(rng.choice(t.EMAIL_SENTENCES))
    if rng.random() < 0.09 * scale:
        sentences.append(rng.choice(t.PHONE_SENTENCES))
    if rng.random() < (0.12 if cards else 0.03) * scale:
        sentences.append(rng.choice(t.CARD_SENTENCES))
    if rng.random() < 0.02 * scale:
        sentences.append(rng.choice(t.IBAN_SENTENCES))
    return sentences


def _finish(rng: random.Random, parts: list[str], personal: list[str]) -> str:
    """Fill the slots and roughen the prose; personal-data sentences are inserted untouched."""
    typos, lower, bare = rng.random() < 0.25, rng.random() < 0.12, rng.random() < 0.08
    sentences = []
    for part in parts:
        sentence = _fill(rng, part)
        if typos and rng.random() < 0.5:
            sentence = _add_typos(rng, sentence)
        if lower:
            sentence = sentence.lower()
        if bare:
            sentence = _PUNCTUATION.sub("", sentence)
        sentences.append(sentence)
    for template in personal:
        sentences.insert(rng.randint(min(1, len(sentences)), len(sentences)), _fill(rng, template))
    return " ".join(sentences)


def _add_typos(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    for _ in range(rng.choice((1, 1, 2))):
        index = rng.randrange(len(words))
        word = words[index]
        if len(word) < 4 or any(char.isdigit() for char in word):
            continue
        at = rng.randrange(1, len(word) - 1)
        kind = rng.randrange(3)
        if kind == 0:
            word = word[: at - 1] + word[at] + word[at - 1] + word[at + 1 :]
        elif kind == 1:
            word = word[:at] + word[at + 1 :]
        else:
            word = word[:at] + word[at] + word[at:]
        words[index] = word
    return " ".join(words)


def _fill(rng: random.Random, template: str) -> str:
    return _SLOT.sub(lambda match: _slot_value(rng, match.group(1)), template)


def _slot_value(rng: random.Random, name: str) -> str:
    values = t.SLOT_VALUES.get(name)
    if values is not None:
        return rng.choice(values)
    maker = _SLOT_MAKERS.get(name)
    if maker is None:
        raise KeyError(f"template slot {{{name}}} has no values")
    return maker(rng)


def _money(rng: random.Random, low: float, high: float) -> str:
    value = round(rng.uniform(low, high), 2 if high < 1000 else 0)
    number = f"{value:,.2f}" if high < 1000 and rng.random() < 0.7 else f"{value:,.0f}"
    style = rng.randrange(6)
    if style == 0:
        return f"£{number}"
    if style == 1:
        return f"€{number}"
    if style == 2:
        return f"${number}"
    if style == 3:
        return f"{number} EUR"
    if style == 4:
        return f"{number} GBP"
    return f"{number.replace(',', '')} euros"


def _date(rng: random.Random) -> str:
    style = rng.randrange(5)
    if style == 0:
        return rng.choice(("yesterday", "this morning", "last week", "two days ago", "today"))
    if style == 1:
        return f"last {rng.choice(_WEEKDAYS)}"
    return f"on {_day(rng)}"


def _day(rng: random.Random) -> str:
    day = rng.randint(1, 28)
    style = rng.randrange(3)
    if style == 0:
        return f"{day} {rng.choice(_MONTHS)}"
    if style == 1:
        return f"{day:02d}/{rng.randint(1, 12):02d}"
    return f"{rng.choice(_MONTHS)} {day}"


def _reference(rng: random.Random) -> str:
    prefix = rng.choice(("REF-", "CAS", "#", "", "LN"))
    return f"{prefix}{rng.randint(10000, 99999999)}"


def _email(rng: random.Random) -> str:
    first = rng.choice(t.SLOT_VALUES["first_name"]).lower()
    last = rng.choice(t.SLOT_VALUES["last_name"]).lower()
    local = rng.choice((f"{first}.{last}", f"{first[0]}{last}{rng.randint(1, 99)}", first + last))
    return f"{local}@{rng.choice(t.SLOT_VALUES['email_domain'])}"


def _phone(rng: random.Random) -> str:
    def digits(k: int) -> str:
        return "".join(str(rng.randrange(10)) for _ in range(k))

    style = rng.randrange(5)
    if style == 0:
        return f"07{digits(3)} {digits(6)}"
    if style == 1:
        return f"+44 7{digits(3)} {digits(6)}"
    if style == 2:
        return f"+447{digits(9)}"
    if style == 3:
        return f"(020) {digits(4)} {digits(4)}"
    return f"+49 15{digits(1)} {digits(8)}"


def _luhn_check_digit(payload: str) -> str:
    total = 0
    for index, char in enumerate(reversed(payload)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def _card_number(rng: random.Random) -> str:
    prefix = rng.choice(("4", "51", "52", "53", "54", "55"))
    payload = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    number = payload + _luhn_check_digit(payload)
    separator = rng.choice((" ", " ", "-", ""))
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    country, bban = rng.choice(
        (
            ("GB", "NWBK" + "".join(str(rng.randrange(10)) for _ in range(14))),
            ("DE", "".join(str(rng.randrange(10)) for _ in range(18))),
            ("NL", "ABNA" + "".join(str(rng.randrange(10)) for _ in range(10))),
        )
    )
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = f"{98 - int(numeric) % 97:02d}"
    iban = country + check + bban
    if rng.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


_SLOT_MAKERS: Mapping[str, Callable[[random.Random], str]] = MappingProxyType(
    {
        "amount": lambda rng: _money(rng, 5, 2500),
        "small_amount": lambda rng: _money(rng, 1.5, 39),
        "big_amount": lambda rng: _money(rng, 3000, 450000),
        "date": _date,
        "day": _day,
        "month": lambda rng: rng.choice(_MONTHS),
        "last4": lambda rng: f"{rng.randrange(10000):04d}",
        "days": lambda rng: str(rng.randint(2, 21)),
        "attempts": lambda rng: rng.choice(("two", "three", "four", "5", "3")),
        "years": lambda rng: str(rng.randint(2, 30)),
        "months": lambda rng: str(rng.choice((3, 6, 12, 18, 24, 36, 48, 60))),
        "year": lambda rng: str(rng.randint(2015, 2024)),
        "age": lambda rng: str(rng.randint(8, 17)),
        "employees": lambda rng: str(rng.randint(3, 80)),
        "ref": _reference,
        "email": _email,
        "phone": _phone,
        "card_number": _card_number,
        "iban": _iban,
    }
)
