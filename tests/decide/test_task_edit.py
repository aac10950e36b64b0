"""Setting one value of a task file in place: only that value's characters change."""

from __future__ import annotations

import pytest
import yaml

from lockgate.decide.task_edit import set_value

KEY = ("policy", "auto_min_confidence")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            "name: x\npolicy:\n  auto_min_confidence: 0.8   # tuned\n  mode: gated\n",
            "name: x\npolicy:\n  auto_min_confidence: 0.65   # tuned\n  mode: gated\n",
            id="block-value-with-comment",
        ),
        pytest.param(
            "policy:\n    auto_min_confidence: '0.8'\n",
            "policy:\n    auto_min_confidence: 0.65\n",
            id="quoted-value-deeper-indent",
        ),
        pytest.param(
            "policy: {mode: gated, auto_min_confidence: 0.8}  # c\n",
            "policy: {mode: gated, auto_min_confidence: 0.65}  # c\n",
            id="flow-value",
        ),
        pytest.param(
            "policy:\n  # review rules\n  review_when: []\n",
            "policy:\n  # review rules\n  auto_min_confidence: 0.65\n  review_when: []\n",
            id="missing-key-in-block",
        ),
        pytest.param(
            "policy: {mode: gated}\n",
            "policy: {auto_min_confidence: 0.65, mode: gated}\n",
            id="missing-key-in-flow",
        ),
        pytest.param(
            "name: x\npolicy:\n# later\nmodels: []\n",
            "name: x\npolicy: {auto_min_confidence: 0.65}\n# later\nmodels: []\n",
            id="empty-policy",
        ),
        pytest.param(
            "name: x  # no policy yet",
            "name: x  # no policy yet\npolicy:\n  auto_min_confidence: 0.65\n",
            id="no-policy",
        ),
    ],
)
def test_only_the_value_changes_and_the_file_reads_back_with_it(before: str, after: str) -> None:
    changed = set_value(before, KEY, "0.65")
    assert changed == after
    assert yaml.safe_load(changed)["policy"]["auto_min_confidence"] == 0.65
