"""A few dozen short, real-looking texts for the tests on the real models (MiniLM, SmolLM2):
three banking intents, and off-topic texts that belong to none of them."""

from __future__ import annotations

import csv
from pathlib import Path

INTENTS: dict[str, list[str]] = {
    "card_arrival": [
        "My new card still has not arrived",
        "When will my card be delivered?",
        "I ordered a card two weeks ago and it is not here yet",
        "How long does it take for the card to come in the post?",
        "The card you sent me never showed up",
        "Is my card on its way?",
        "Can you track the delivery of my card?",
        "I am still waiting for my card to arrive",
        "My card has not been delivered yet, what should I do?",
        "Where is the card I ordered?",
        "Has my replacement card been posted?",
        "It has been ten days and no card in the mail",
    ],
    "lost_or_stolen_card": [
        "Someone stole my card",
        "I lost my card yesterday",
        "My wallet was stolen with my card in it",
        "I cannot find my card anywhere, please block it",
        "Please freeze my card, it was taken from my bag",
        "I think I left my card at a restaurant and it is gone",
        "My card was stolen on the train",
        "I misplaced my debit card",
        "How do I report a lost card?",
        "A thief took my purse and my bank card",
        "Block my card, I have lost it",
        "My card is missing and I fear someone has it",
    ],
    "exchange_rate": [
        "What exchange rate do you use?",
        "How much is one euro in dollars today?",
        "What rate will I get when I exchange pounds to euros?",
        "Is your currency exchange rate fair?",
        "Where can I see today's exchange rates?",
        "What is the rate for converting dollars to yen?",
        "Do you charge extra on the exchange rate at weekends?",
        "How is the foreign exchange rate calculated?",
        "Which exchange rate applies to my card payments abroad?",
        "Tell me the current rate from GBP to USD",
        "Why did I get a bad exchange rate?",
        "Is the exchange rate updated every day?",
    ],
}

OFF_TOPIC = [
    "What is the weather going to be like in Paris tomorrow?",
    "Give me a recipe for banana bread",
    "Who won the football match last night?",
    "Can you recommend a good science fiction novel?",
    "How do I change the oil in my car?",
    "What time does the cinema open on Sunday?",
    "My cat keeps scratching the sofa, what can I do?",
    "Translate good morning into Italian",
]


def write_training_csv(path: Path, field: str = "intent") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", field])
        for label, texts in INTENTS.items():
            for text in texts:
                writer.writerow([text, label])
    return path


def task_data(models: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {
        "name": "banking",
        "input": {"text": {"type": "string"}},
        "output": {"intent": {"type": "enum", "values": list(INTENTS)}},
        "models": models,
        **extra,
    }
