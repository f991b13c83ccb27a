"""Text features for Chinese policy clauses: character n-grams plus jieba words (with a
policy-domain dictionary), as one scikit-learn transformer.

Char n-grams carry most of the signal on short clauses; jieba words add domain terms kept whole
by the user dictionary (the bundled resource ``policy_terms.txt``: 专精特新, 集成电路, 科技成果转化 …); a
third, lighter block holds the char n-grams of the clause's first 10 characters, where its subject
usually is (a term in the opening says more about the label than the same term further in).
What each choice is worth was measured with ``bench/model_quality.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import jieba
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from ..resources import resource_path

# The bundled policy-domain dictionary, by its resource name: a fitted featurizer stores this name,
# not a path, so a pickled model loads in any install (the path is resolved when jieba is built).
POLICY_TERMS = "policy_terms.txt"
jieba.setLogLevel(logging.WARNING)
_WORDLIKE = re.compile(r"\w")
# A training set this small keeps every n-gram; larger ones get min_df, scaled (see _effective_min_df).
MIN_DF_FULL_AT = 1000
PREFIX_NGRAM_RANGE = (1, 3)
PREFIX_MIN_DF = 2


def user_dict_path(user_dict: str | None) -> Path | None:
    """The file a ``user_dict`` setting names: a bundled resource by its name, else a path.

    Parameters
    ----------
    user_dict : str or None
        A bare file name of a bundled resource (``"policy_terms.txt"``, :data:`POLICY_TERMS`), the
        path of a jieba user dictionary, or None for none.

    Returns
    -------
    Path or None

    Examples
    --------
    >>> user_dict_path("policy_terms.txt") == resource_path("policy_terms.txt")
    True
    >>> user_dict_path("/srv/terms.txt")
    PosixPath('/srv/terms.txt')
    """
    if not user_dict:
        return None
    return _bundled(user_dict) or Path(user_dict)


def _bundled(name: str) -> Path | None:
    """The bundled resource ``name`` (a bare file name), or None if there is none by that name."""
    if Path(name).name != name:
        return None
    path = resource_path(name)
    return path if path.is_file() else None


def portable_user_dict(user_dict: str | None) -> str | None:
    """``user_dict`` as a pickle should hold it: the path of a bundled resource in *some* install
    (what models pickled before resources were stored by name hold) becomes the resource's name."""
    if isinstance(user_dict, str):
        path = Path(user_dict)
        if path.parent.parts[-2:] == ("annotator", "resources") and _bundled(path.name) is not None:
            return path.name
    return user_dict


class JiebaTokenizer:
    """A picklable jieba word tokenizer with a user dictionary.

    jieba's ``Tokenizer`` holds a lock and a large prefix dictionary, so it is built lazily on first
    use and dropped when pickled; a loaded model rebuilds it on its first call.

    Parameters
    ----------
    user_dict : the name of a bundled resource (default: :data:`POLICY_TERMS`), the path of a jieba
        user dictionary (one term per line), or None for jieba's own only. It is resolved
        (:func:`user_dict_path`) when jieba is built, so a pickle holds no path of this install.

    Examples
    --------
    >>> JiebaTokenizer()("支持专精特新企业发展集成电路")  # doctest: +SKIP
    ['支持', '专精特新', '企业', '发展', '集成电路']
    """

    def __init__(self, user_dict: str | None = POLICY_TERMS) -> None:
        self.user_dict = user_dict
        self._tokenizer = None
        self._lock = threading.Lock()

    def _get(self) -> jieba.Tokenizer:
        with self._lock:
            if self._tokenizer is None:
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                path = user_dict_path(self.user_dict)
                if path is not None:
                    with open(path, "rb") as terms:  # jieba leaves a path's file open
                        tokenizer.load_userdict(terms)
                self._tokenizer = tokenizer
            return self._tokenizer

    def __call__(self, text: str) -> list[str]:
        return [w for w in self._get().lcut(text) if _WORDLIKE.search(w)]

    def __getstate__(self) -> dict:
        return {"user_dict": self.user_dict}

    def __setstate__(self, state: dict) -> None:
        JiebaTokenizer.__init__(self, portable_user_dict(state["user_dict"]))

    def __repr__(self) -> str:
        return f"JiebaTokenizer(user_dict={self.user_dict!r})"


def check_documents(raw_documents) -> list[str]:
    """Return the documents as a list of str; InputError names the first one that is not text."""
    if isinstance(raw_documents, str):
        raise InputError("expected a list of texts, got a single string; wrap it in a list: [text]")
    docs = list(raw_documents)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise InputError(f"text {i} is {type(doc).__name__}, not str")
    return docs


def _effective_min_df(min_df: int, n_docs: int) -> int:
    """``min_df`` for a corpus of ``n_docs``: 1 up to 1,000 texts, then one more per 1,000.

    A fixed min_df of 5 drops most n-grams of a 200-clause active-learning start; on the full seed
    file (5.6k clauses) it is the measured best (rare n-grams make the naive-Bayes weights noisy).
    """
    return int(max(1, min(min_df, 1 + n_docs // MIN_DF_FULL_AT)))


class PolicyTextFeaturizer(TransformerMixin, BaseEstimator):
    """TF-IDF blocks over character n-grams and jieba word n-grams, stacked side by side.

    Each block is sublinear-tf TF-IDF with l2-normalized rows, so a clause's row has norm
    ``sqrt(1 + word_weight**2 + prefix_weight**2)``. Blocks, left to right: characters, jieba
    words, the clause opening.

    Parameters
    ----------
    char_ngram_range : n-gram sizes over characters.
    word_ngram_range : n-gram sizes over jieba words; ``None`` for characters only.
    word_weight : scale of the word block relative to a char block.
    min_df : minimum document frequency of a kept n-gram on a large corpus; smaller corpora use a
        smaller value (1 up to 1,000 texts, then one more per 1,000 texts, up to ``min_df``).
    max_features : cap on each vocabulary (None: no cap).
    user_dict : jieba user dictionary: a bundled resource's name (default :data:`POLICY_TERMS`, the
        policy terms), a file path, or None for jieba's own only (see :class:`JiebaTokenizer`).
    prefix_chars : length of the clause opening that gets a block of its own (character 1-3-grams
        of the first ``prefix_chars`` characters); ``None`` or 0 for no such block. A clause's
        opening names its subject ("对集成电路企业…", "高等院校应…"), which decides which label it
        was collected for more often than a term further in (measured: +0.006 macro-F1).
    prefix_weight : scale of the opening block relative to a char block.

    Examples
    --------
    >>> featurizer = PolicyTextFeaturizer().fit(texts)          # doctest: +SKIP
    >>> X = featurizer.transform(["对集成电路企业给予研发补助。"])  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        char_ngram_range=(1, 4),
        word_ngram_range=(1, 2),
        word_weight=1.0,
        min_df=5,
        max_features=None,
        user_dict=POLICY_TERMS,
        prefix_chars=10,
        prefix_weight=0.5,
    ):
        self.char_ngram_range = char_ngram_range
        self.word_ngram_range = word_ngram_range
        self.word_weight = word_weight
        self.min_df = min_df
        self.max_features = max_features
        self.user_dict = user_dict
        self.prefix_chars = prefix_chars
        self.prefix_weight = prefix_weight

    def __setstate__(self, state: dict) -> None:
        # Featurizers pickled before resources were stored by name hold an install's absolute path.
        if "user_dict" in state:
            state = dict(state, user_dict=portable_user_dict(state["user_dict"]))
        super().__setstate__(state)

    def fit(self, raw_documents, y=None) -> PolicyTextFeaturizer:
        self._fit_transform(check_documents(raw_documents))
        return self

    def fit_transform(self, raw_documents, y=None, **fit_params) -> sp.csr_matrix:
        # One pass: each text is tokenized (by jieba too) once, not once to fit and once to transform.
        return self._fit_transform(check_documents(raw_documents))

    def _fit_transform(self, docs: list[str]) -> sp.csr_matrix:
        if not docs:
            raise InputError("cannot fit the featurizer on zero texts")
        min_df = _effective_min_df(self.min_df, len(docs))
        self.char_ = TfidfVectorizer(
            analyzer="char",
            ngram_range=tuple(self.char_ngram_range),
            sublinear_tf=True,
            min_df=min_df,
            max_features=self.max_features,
            dtype=np.float32,
        )
        blocks = [self.char_.fit_transform(docs)]
        self.word_ = None
        if self.word_ngram_range:
            self.word_ = TfidfVectorizer(
                tokenizer=JiebaTokenizer(self.user_dict),
                token_pattern=None,
                lowercase=False,
                ngram_range=tuple(self.word_ngram_range),
                sublinear_tf=True,
                min_df=min_df,
                max_features=self.max_features,
                dtype=np.float32,
            )
            blocks.append(self.word_.fit_transform(docs) * np.float32(self.word_weight))
        self.prefix_ = None
        if self.prefix_chars:
            # min_df 2 at most: openings are short, so most of their n-grams are rarer than a clause's.
            self.prefix_ = TfidfVectorizer(
                analyzer="char",
                ngram_range=PREFIX_NGRAM_RANGE,
                sublinear_tf=True,
                min_df=min(min_df, PREFIX_MIN_DF),
                max_features=self.max_features,
                dtype=np.float32,
            )
            blocks.append(self.prefix_.fit_transform(self._openings(docs)) * np.float32(self.prefix_weight))
        self.min_df_ = min_df
        self.n_features_out_ = sum(b.shape[1] for b in blocks)
        return sp.hstack(blocks, format="csr")

    def transform(self, raw_documents) -> sp.csr_matrix:
        check_is_fitted(self, "char_")
        docs = check_documents(raw_documents)
        blocks = [self.char_.transform(docs)]
        if self.word_ is not None:
            blocks.append(self.word_.transform(docs) * np.float32(self.word_weight))
        prefix = getattr(self, "prefix_", None)  # getattr: featurizers pickled before the block
        if prefix is not None:
            blocks.append(prefix.transform(self._openings(docs)) * np.float32(self.prefix_weight))
        return sp.hstack(blocks, format="csr")

    def _openings(self, docs: list[str]) -> list[str]:
        """The first ``prefix_chars`` characters of each text."""
        return [doc[: self.prefix_chars] for doc in docs]

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Feature names prefixed by their block: ``c:集成电``, ``w:集成电路``, ``p:对集`` (opening)."""
        check_is_fitted(self, "char_")
        names = [f"c:{n}" for n in self.char_.get_feature_names_out()]
        if self.word_ is not None:
            names += [f"w:{n}" for n in self.word_.get_feature_names_out()]
        prefix = getattr(self, "prefix_", None)
        if prefix is not None:
            names += [f"p:{n}" for n in prefix.get_feature_names_out()]
        return np.asarray(names, dtype=object)
