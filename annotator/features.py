"""Text features for Chinese policy clauses: jieba words (with a policy-domain dictionary) plus
character n-grams, as one scikit-learn transformer.

Char n-grams carry most of the signal on short clauses; jieba words add domain terms kept whole
by the user dictionary (``resources/policy_terms.txt``: 专精特新, 集成电路, 科技成果转化 …).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import re

import jieba
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from .errors import InputError

POLICY_TERMS = Path(__file__).resolve().parent / "resources" / "policy_terms.txt"
jieba.setLogLevel(logging.WARNING)
_WORDLIKE = re.compile(r"\w")


class JiebaTokenizer:
    """A picklable jieba word tokenizer with a user dictionary.

    jieba's ``Tokenizer`` holds a lock and a large prefix dictionary, so it is built lazily on first
    use and dropped when pickled; a loaded model rebuilds it on its first call.
    """

    def __init__(self, user_dict: str | None = str(POLICY_TERMS)) -> None:
        self.user_dict = user_dict
        self._tokenizer = None
        self._lock = threading.Lock()

    def _get(self) -> jieba.Tokenizer:
        with self._lock:
            if self._tokenizer is None:
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                if self.user_dict:
                    with open(self.user_dict, "rb") as fh:  # jieba leaves a path's file open
                        tokenizer.load_userdict(fh)
                self._tokenizer = tokenizer
            return self._tokenizer

    def __call__(self, text: str) -> list[str]:
        return [w for w in self._get().lcut(text) if _WORDLIKE.search(w)]

    def __getstate__(self) -> dict:
        return {"user_dict": self.user_dict}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["user_dict"])


def check_documents(raw_documents) -> list[str]:
    """Return the documents as a list of str; InputError names the first one that is not text."""
    if isinstance(raw_documents, str):
        raise InputError("expected a list of texts, got a single string")
    docs = list(raw_documents)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise InputError(f"text {i} is {type(doc).__name__}, not str")
    return docs


class PolicyTextFeaturizer(TransformerMixin, BaseEstimator):
    """TF-IDF over character n-grams and jieba word n-grams, stacked side by side.

    Parameters
    ----------
    char_ngram_range : n-gram sizes over characters.
    word_ngram_range : n-gram sizes over jieba words; ``None`` for characters only.
    word_weight : scale of the word block relative to the char block.
    min_df : minimum document frequency of a kept n-gram.
    max_features : cap on each vocabulary (None: no cap).
    user_dict : jieba user dictionary path (default: the bundled policy terms).
    """

    def __init__(self, *, char_ngram_range=(1, 3), word_ngram_range=(1, 2), word_weight=1.0,
                 min_df=2, max_features=None, user_dict=str(POLICY_TERMS)):
        self.char_ngram_range = char_ngram_range
        self.word_ngram_range = word_ngram_range
        self.word_weight = word_weight
        self.min_df = min_df
        self.max_features = max_features
        self.user_dict = user_dict

    def fit(self, raw_documents, y=None):
        self._fit_transform(check_documents(raw_documents))
        return self

    def fit_transform(self, raw_documents, y=None, **fit_params):
        return self._fit_transform(check_documents(raw_documents))

    def _fit_transform(self, docs: list[str]) -> sp.csr_matrix:
        if not docs:
            raise InputError("cannot fit the featurizer on zero texts")
        min_df = self.min_df if len(docs) >= 20 else 1  # tiny training sets keep every n-gram
        self.char_ = TfidfVectorizer(analyzer="char", ngram_range=tuple(self.char_ngram_range),
                                     sublinear_tf=True, min_df=min_df, max_features=self.max_features,
                                     dtype=np.float32)
        blocks = [self.char_.fit_transform(docs)]
        self.word_ = None
        if self.word_ngram_range:
            self.word_ = TfidfVectorizer(tokenizer=JiebaTokenizer(self.user_dict), token_pattern=None,
                                         lowercase=False, ngram_range=tuple(self.word_ngram_range),
                                         sublinear_tf=True, min_df=min_df,
                                         max_features=self.max_features, dtype=np.float32)
            blocks.append(self.word_.fit_transform(docs) * self.word_weight)
        self.n_features_out_ = sum(b.shape[1] for b in blocks)
        return sp.hstack(blocks, format="csr")

    def transform(self, raw_documents) -> sp.csr_matrix:
        check_is_fitted(self, "char_")
        docs = check_documents(raw_documents)
        blocks = [self.char_.transform(docs)]
        if self.word_ is not None:
            blocks.append(self.word_.transform(docs) * self.word_weight)
        return sp.hstack(blocks, format="csr")
