"""The stored classifier's fast prediction path computes what scikit-learn computes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from lockgate.providers.classifier_model import ClassifierModel, FastTfidfVectorizer

CORPUS = [
    "refund my invoice please",
    "the server crashed with an error",
    "a quote for ten licenses",
    "I was charged twice for one payment",
    "login fails: password reset loop",
    "do you offer a discount for a demo?",
    "Refund REFUND refund",
    "naïve café İstanbul ÉCOLE",
]
ODD = ["", "   ", "A  b\tC\nd", "İstanbul ÉCOLE café", "x", "ab", "refund refund", "unseen words"]


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"analyzer": "char_wb", "ngram_range": (2, 5)}, id="char_wb"),
        pytest.param({"analyzer": "word", "ngram_range": (1, 2)}, id="word"),
        pytest.param({"analyzer": "word", "sublinear_tf": False, "norm": None}, id="raw-counts"),
    ],
)
def test_fast_features_equal_sklearn_ones(options: dict[str, Any]) -> None:
    options = {"sublinear_tf": True, "dtype": np.float32, **options}
    reference = TfidfVectorizer(**options).fit(CORPUS)
    fast = FastTfidfVectorizer(**options).fit(CORPUS)
    for texts in (ODD, ODD, CORPUS):  # the second pass is served from the word cache
        expected = reference.transform(texts)
        actual = fast.transform(texts)
        assert actual.dtype == expected.dtype
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual.toarray(), expected.toarray(), rtol=1e-6, atol=1e-7)


def test_the_word_cache_is_not_stored_in_the_artifact() -> None:
    fast = FastTfidfVectorizer(analyzer="char_wb").fit(CORPUS)
    fast.transform(CORPUS)
    assert "_cached_word_ids" in fast.__dict__
    assert "_cached_word_ids" not in fast.__getstate__()


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(
            ["billing", "tech", "sales", "billing", "tech", "sales", "billing", "x"], id="multi"
        ),
        pytest.param(["billing", "tech"] * 4, id="binary"),
    ],
)
def test_predictions_equal_sklearn_ones(labels: list[str]) -> None:
    features = FeatureUnion(
        [
            ("words", FastTfidfVectorizer(ngram_range=(1, 2), dtype=np.float32)),
            (
                "chars",
                FastTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), dtype=np.float32),
            ),
        ]
    )
    classifier = LogisticRegression(C=10.0).fit(features.fit_transform(CORPUS), labels)
    model = ClassifierModel("t", ("text",), features, {"queue": classifier})
    expected = classifier.predict_proba(features.transform(ODD + CORPUS))
    actual = model.predict_proba(ODD + CORPUS)["queue"]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert model.classes("queue") == sorted(set(labels))


@pytest.mark.parametrize("text", ODD + CORPUS)
def test_one_text_alone_is_predicted_as_sklearn_predicts_it(text: str) -> None:
    # A few texts take another path than many (no sparse matrices): the same numbers.
    features = FeatureUnion(
        [
            ("words", FastTfidfVectorizer(ngram_range=(1, 2), dtype=np.float32)),
            (
                "chars",
                FastTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), dtype=np.float32),
            ),
        ]
    )
    matrix = features.fit_transform(CORPUS)
    labels = ["billing", "tech", "sales", "billing", "tech", "sales", "billing", "x"]
    classifiers = {
        "queue": LogisticRegression(C=10.0).fit(matrix, labels),
        "urgent": LogisticRegression(C=10.0).fit(matrix, ["yes", "no"] * 4),
    }
    model = ClassifierModel("t", ("text",), features, classifiers)
    actual = model.predict_proba([text])
    for name, classifier in classifiers.items():
        expected = classifier.predict_proba(features.transform([text]))
        np.testing.assert_allclose(actual[name], expected, rtol=1e-5, atol=1e-6)


def test_the_text_joins_input_fields_in_declaration_order() -> None:
    model = ClassifierModel("t", ("subject", "body"), FeatureUnion([]), {})
    assert model.text({"body": "b", "subject": "s", "other": "o"}) == "s\nb"
    assert model.text({"body": 3}) == "\n3"
