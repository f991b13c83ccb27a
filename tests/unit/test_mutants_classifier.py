"""Tests written for mutants that mutmut found alive in annotator/model/classifier.py
(docs/mutation-testing.md): the decision rule behind every pre-fill, /predict and ``annotator predict``."""

from __future__ import annotations

import numpy as np

from annotator.model.classifier import at_least_one


def test_a_probability_equal_to_its_threshold_is_decided():
    # "Labels at or above their threshold": a tie with the threshold is in, per label and shared.
    proba = np.array([[0.3125, 0.3124, 0.9], [0.125, 0.5, 0.1]])
    thresholds = np.array([0.3125, 0.3125, 0.5])
    assert at_least_one(proba, thresholds).tolist() == [[1, 0, 1], [0, 1, 0]]
    assert at_least_one(np.array([[0.5, 0.5, 0.2]]), 0.5).tolist() == [[1, 1, 0]]
    # The relative rule keeps a tie with relative * top too.
    assert at_least_one(np.array([[0.8, 0.4, 0.39]]), 0.3, relative=0.5).tolist() == [[1, 1, 0]]


def test_the_relative_rule_compares_each_clause_with_its_own_top_label():
    # Row 2's labels are all weaker than row 1's: measured against its own top (0.4), 0.3 stays;
    # measured against the batch's top (0.9) it would be dropped. A pre-fill must not depend on
    # which other clauses were predicted in the same request.
    proba = np.array([[0.9, 0.6], [0.4, 0.3]])
    assert at_least_one(proba, 0.2, relative=0.7).tolist() == [[1, 0], [1, 1]]
    assert at_least_one(proba[1:], 0.2, relative=0.7).tolist() == [[1, 1]]
