"""Reasons as people read them: the sentence shown beside a decision's stored reason.

The pipeline stores the machine form of a reason (`policy.review_when.0 matched (output queue
equals fraud)`, `confidence 0.62 is below auto_min_confidence 0.80`), which names the rule
exactly; the CLI, the API (`reason_text`) and the pages show `reason_text(reason)` beside it
("queue is fraud: the policy sends fraud to review").
"""

from __future__ import annotations

import functools
import re

_RULE = re.compile(
    r"^policy\.(?P<group>\w+)\.\d+ matched \((?P<side>output|input) (?P<name>\w+) "
    r"(?P<test>equals|in|matches|empty|not empty|above|below) ?(?P<value>.*?)\)(?P<rest>.*)$",
    re.DOTALL,
)
_CONFIDENCE = re.compile(
    r"^confidence (?P<c>[\d.]+) (?:is below auto_min_confidence|>=) (?P<t>[\d.]+)(?P<rest>.*)$",
    re.DOTALL,
)
_CONSEQUENCE = {
    "review_when": "the policy sends {what} to review",
    "reject_when": "the policy rejects {what}",
    "two_person_when": "the policy asks two reviewers for {what}",
}
_PHRASES = {
    "equals": "is {value}",
    "in": "is one of {value}",
    "matches": "matches the pattern {value}",
    "empty": "is empty",
    "not empty": "is not empty",
    "above": "is above {value}",
    "below": "is below {value}",
}


@functools.lru_cache(maxsize=4096)
def reason_text(reason: str) -> str:
    """A decision's reason as a sentence for people ("queue is fraud: the policy sends fraud to
    review"); the stored reason stays the machine form. A reason of another kind (a failure,
    out of scope) is returned as it is. Reasons recur (every answer of the API carries one),
    so the last few thousand sentences are kept."""
    rule = _RULE.match(reason)
    if rule is not None and rule["group"] in _CONSEQUENCE:
        value = rule["value"]
        what = value if rule["test"] == "equals" and rule["side"] == "output" else "it"
        fact = f"{rule['name']} {_PHRASES[rule['test']].format(value=value)}"
        return f"{fact}: {_CONSEQUENCE[rule['group']].format(what=what)}{rule['rest']}"
    confidence = _CONFIDENCE.match(reason)
    if confidence is not None:
        sure, needed = float(confidence["c"]), float(confidence["t"])
        verdict = (
            "below the {:.0%} needed to automate: a person reviews it"
            if sure < needed
            else "at least the {:.0%} needed to automate it"
        ).format(needed)
        return f"the model is {sure:.0%} sure, {verdict}{confidence['rest']}"
    if reason.startswith("suggest mode"):
        return "the task is in suggest mode: a person reviews every decision"
    if reason == "the model gave no confidence":
        return "the model gave no confidence, so a person reviews it"
    return reason
