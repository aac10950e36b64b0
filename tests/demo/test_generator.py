import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from lockgate.demo.generator import QUEUES, Ticket, generate_tickets, write_csv

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b")
PHONE = re.compile(r"\+\d{2} ?\d{3,4} ?\d{6,8}|\(0\d{2}\) \d{4} \d{4}|\b07\d{3} \d{6}\b")
# Not inside a longer run of digit groups, such as a German IBAN.
CARD = re.compile(r"(?<![\d ]{2})\b\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}\b(?! \d)")


@pytest.fixture(scope="module")
def tickets() -> list[Ticket]:
    return generate_tickets(3000, seed=1)


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return total % 10 == 0


def test_luhn_check_in_this_test_file_is_right() -> None:
    assert luhn_valid("4539578763621486")
    assert not luhn_valid("4539578763621487")


def test_same_seed_gives_the_same_tickets() -> None:
    assert generate_tickets(500, seed=7) == generate_tickets(500, seed=7)


def test_different_seeds_give_different_tickets() -> None:
    first = [t.text for t in generate_tickets(500, seed=7)]
    second = [t.text for t in generate_tickets(500, seed=8)]
    assert first != second
    assert len(set(first) ^ set(second)) > 100


def test_zero_tickets_is_an_empty_list() -> None:
    assert generate_tickets(0, seed=1) == []


def test_every_label_is_a_known_queue(tickets: list[Ticket]) -> None:
    assert {t.queue for t in tickets} <= set(QUEUES)


def test_there_are_at_least_twelve_queues_besides_other_which_comes_last() -> None:
    assert QUEUES[-1] == "other"
    assert len(set(QUEUES)) == len(QUEUES)
    assert len(QUEUES) - 1 >= 12


def test_every_queue_appears_in_3000_tickets(tickets: list[Ticket]) -> None:
    assert {t.queue for t in tickets} == set(QUEUES)


def test_share_of_other_is_between_4_and_15_percent(tickets: list[Ticket]) -> None:
    share = sum(t.queue == "other" for t in tickets) / len(tickets)
    assert 0.04 <= share <= 0.15


def test_queue_sizes_are_skewed_but_not_extremely() -> None:
    counts = Counter(t.queue for t in generate_tickets(10_000, seed=3) if t.queue != "other")
    ratio = max(counts.values()) / min(counts.values())
    assert 2 <= ratio <= 4.5


def test_some_tickets_contain_an_email_address(tickets: list[Ticket]) -> None:
    share = sum(bool(EMAIL.search(t.text)) for t in tickets) / len(tickets)
    assert 0.05 <= share <= 0.2


def test_some_tickets_contain_a_phone_number(tickets: list[Ticket]) -> None:
    share = sum(bool(PHONE.search(t.text)) for t in tickets) / len(tickets)
    assert 0.04 <= share <= 0.15


def test_some_tickets_contain_a_luhn_valid_card_number(tickets: list[Ticket]) -> None:
    numbers = [re.sub(r"\D", "", m.group()) for t in tickets for m in CARD.finditer(t.text)]
    assert len(numbers) >= 0.02 * len(tickets)
    assert all(luhn_valid(number) for number in numbers)


def test_card_numbers_come_both_grouped_and_ungrouped(tickets: list[Ticket]) -> None:
    separators = {m.group(1) for t in tickets for m in CARD.finditer(t.text)}
    assert "" in separators
    assert " " in separators


def test_some_tickets_contain_an_iban(tickets: list[Ticket]) -> None:
    assert any(re.search(r"\b(GB|DE|NL)\d{2} ?[A-Z0-9]{4}", t.text) for t in tickets)


def test_ticket_lengths_range_from_a_few_words_to_several_sentences(
    tickets: list[Ticket],
) -> None:
    word_counts = [len(t.text.split()) for t in tickets]
    assert min(word_counts) <= 3
    assert max(word_counts) >= 50


def test_every_ticket_has_text_without_unfilled_slots(tickets: list[Ticket]) -> None:
    assert all(t.text.strip() for t in tickets)
    assert not [t.text for t in tickets if "{" in t.text or "}" in t.text]


def test_ids_are_unique_and_numbered_from_one_with_the_prefix() -> None:
    ids = [t.id for t in generate_tickets(1200, seed=1, id_prefix="D")]
    assert ids[0] == "D000001"
    assert ids[-1] == "D001200"
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"D\d{6}", i) for i in ids)


def test_write_csv_round_trips_through_dict_reader(tmp_path: Path, tickets: list[Ticket]) -> None:
    path = tmp_path / "tickets.csv"
    write_csv(tickets, path)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [Ticket(**row) for row in rows] == tickets


def test_write_csv_without_labels_has_only_id_and_text(
    tmp_path: Path, tickets: list[Ticket]
) -> None:
    path = tmp_path / "unlabelled.csv"
    write_csv(tickets[:50], str(path), with_labels=False)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["id", "text"]
    assert [(row["id"], row["text"]) for row in rows] == [(t.id, t.text) for t in tickets[:50]]
