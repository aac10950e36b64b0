"""Shifted streams of support tickets, for drift tests and the drift benchmark.

Each kind replaces a share of a stream from the demo generator (`lockgate.demo.generator`)
with tickets the reference never saw:

- `topic`: a new topic (pet, travel and phone insurance claims, which the bank's queues do
  not cover);
- `language`: the bank's own topics written in German, Spanish or French;
- `typos`: the demo's tickets with heavy typos (about one character in five changed).

Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from lockgate.demo.generator import generate_tickets

Shift = Literal["topic", "language", "typos"]
SHIFTS: tuple[Shift, ...] = ("topic", "language", "typos")

_TOPIC = (
    "My {pet} needs surgery and the vet wants a deposit, does the policy cover the {care}?",
    "The insurer rejected my claim for the {care} of my {pet}, I have the vet invoice here.",
    "Our flight to {city} was cancelled and the suitcase never arrived, how do I claim "
    "for the lost luggage under the travel cover?",
    "I cracked the screen of my {phone} while hiking, is accidental damage included?",
    "Please add my {pet} to the household pet plan and tell me the monthly premium.",
    "The hotel in {city} charged a cancellation penalty, can the trip insurance reimburse it?",
    "My {phone} was soaked in the pool, the repair shop quotes a replacement handset.",
    "Is {care} for an elderly {pet} excluded as a pre-existing condition?",
    "Windscreen chipped on the motorway near {city}, who handles the glazing claim?",
    "The kennel needs proof of vaccination for my {pet} before the holiday in {city}.",
)
_TOPIC_SLOTS = {
    "pet": ("labrador", "kitten", "parrot", "rabbit", "spaniel", "hamster", "tortoise"),
    "care": ("dental treatment", "hip operation", "physiotherapy", "x-ray", "neutering"),
    "city": ("Lisbon", "Reykjavik", "Marrakesh", "Osaka", "Valparaiso", "Tallinn"),
    "phone": ("smartphone", "tablet", "smartwatch", "handset"),
}
_LANGUAGE = (
    "Meine Karte wurde gestohlen, bitte sperren Sie sie sofort und schicken Sie eine neue.",
    "Ich habe eine Überweisung von {amount} Euro getätigt, aber das Geld ist nie angekommen.",
    "Warum wurden mir diesen Monat zusätzliche Gebühren berechnet? Ich verlange eine "
    "Rückerstattung.",
    "Ich kann mich seit gestern nicht mehr in mein Konto einloggen, das Passwort geht nicht.",
    "Mi tarjeta fue bloqueada en el cajero y no puedo sacar dinero, necesito ayuda urgente.",
    "Hice una transferencia de {amount} euros hace tres días y todavía no ha llegado.",
    "Quiero cerrar mi cuenta de ahorros y pasar todo el saldo a la cuenta corriente.",
    "No reconozco este cargo de {amount} euros en mi extracto, creo que es un fraude.",
    "Ma carte bancaire a été avalée par le distributeur, comment puis-je la récupérer ?",
    "Je voudrais modifier mon adresse postale et mon numéro de téléphone, s'il vous plaît.",
    "Le prélèvement de mon prêt immobilier a échoué ce mois-ci, que dois-je faire ?",
    "Pourquoi mon virement de {amount} euros est-il bloqué depuis lundi ?",
)
_KEYS = "qwertyuiopasdfghjklzxcvbnm"


def _fill(rng: random.Random, template: str) -> str:
    values = {k: rng.choice(v) for k, v in _TOPIC_SLOTS.items()}
    values["amount"] = str(rng.randrange(20, 5000))
    return template.format(**values)


def new_topic(rng: random.Random) -> str:
    return _fill(rng, rng.choice(_TOPIC))


def new_language(rng: random.Random) -> str:
    return _fill(rng, rng.choice(_LANGUAGE))


def heavy_typos(rng: random.Random, text: str, rate: float = 0.2) -> str:
    """About `rate` of the letters changed: dropped, doubled, swapped or mistyped."""
    out: list[str] = []
    chars = list(text)
    i = 0
    while i < len(chars):
        c = chars[i]
        if c.isalpha() and rng.random() < rate:
            move = rng.randrange(4)
            if move == 0:
                pass  # dropped
            elif move == 1:
                out.append(c + c)
            elif move == 2 and i + 1 < len(chars):
                out.append(chars[i + 1] + c)
                i += 1
            else:
                out.append(rng.choice(_KEYS))
        else:
            out.append(c)
        i += 1
    return "".join(out)


def stream(n: int, *, seed: int, shift: Shift | None = None, share: float = 0.2) -> list[str]:
    """`n` ticket texts from the demo generator; with `shift`, `share` of them (chosen at
    random) replaced by shifted ones."""
    texts = [t.text for t in generate_tickets(n, seed=seed, id_prefix="S")]
    return texts if shift is None else shifted(texts, shift, seed=seed, share=share)


def shifted(texts: Sequence[str], shift: Shift, *, seed: int, share: float = 0.2) -> list[str]:
    """`texts` with `share` of them shifted (see `stream`)."""
    rng = random.Random(seed)
    out = list(texts)
    for i in rng.sample(range(len(out)), round(len(out) * share)):
        if shift == "topic":
            out[i] = new_topic(rng)
        elif shift == "language":
            out[i] = new_language(rng)
        else:
            out[i] = heavy_typos(rng, out[i])
    return out
