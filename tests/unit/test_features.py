"""features: the picklable jieba tokenizer and the char + word TF-IDF featurizer, on real clauses."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from annotator import InputError
from annotator.model import features as features_module
from annotator.model.features import (
    POLICY_TERMS,
    JiebaTokenizer,
    PolicyTextFeaturizer,
    _effective_min_df,
    check_documents,
    portable_user_dict,
    user_dict_path,
)
from annotator.labels import load_label_config
from annotator.resources import resource_path
from annotator.text.seedset import read_labeled_file
from tests.conftest import seed_lines

LABELS = load_label_config().labels


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> list[str]:
    path = tmp_path_factory.mktemp("features") / "seed.tsv"
    path.write_text("\n".join(seed_lines(300, seed=1)) + "\n", encoding="utf-8")
    return read_labeled_file(path, LABELS).texts


@pytest.fixture(scope="module")
def fitted(texts) -> PolicyTextFeaturizer:
    return PolicyTextFeaturizer().fit(texts)


def test_tokenizer_keeps_user_dictionary_terms_whole():
    words = JiebaTokenizer()("支持专精特新中小企业发展集成电路产业，推动科技成果转化。")
    assert "专精特新" in words and "集成电路" in words
    assert all(w.strip("，。") for w in words)  # punctuation is dropped


def test_tokenizer_pickles_without_its_lock_or_dictionary():
    tokenizer = JiebaTokenizer()
    before = tokenizer("发展集成电路产业")  # builds the jieba dictionary and holds a lock
    assert tokenizer.__getstate__() == {"user_dict": tokenizer.user_dict}
    loaded = pickle.loads(pickle.dumps(tokenizer))
    assert loaded._tokenizer is None
    assert loaded("发展集成电路产业") == before


def test_tokenizer_without_user_dictionary():
    assert "".join(JiebaTokenizer(None)("发展集成电路产业")) == "发展集成电路产业"


def test_featurizer_follows_the_estimator_contract(texts):
    featurizer = PolicyTextFeaturizer(min_df=2, word_weight=0.5)
    assert clone(featurizer).get_params() == featurizer.get_params()
    assert featurizer.get_params()["char_ngram_range"] == (1, 4)
    with pytest.raises(NotFittedError):
        featurizer.transform(texts[:2])


def test_fit_transform_equals_fit_then_transform(texts, fitted):
    X = PolicyTextFeaturizer().fit_transform(texts)
    assert X.shape == (len(texts), fitted.n_features_out_)
    assert abs(X - fitted.transform(texts)).max() < 1e-6
    assert X.dtype == np.float32


def test_pickled_featurizer_transforms_the_same(texts, fitted):
    loaded = pickle.loads(pickle.dumps(fitted))
    assert abs(loaded.transform(texts[:20]) - fitted.transform(texts[:20])).max() == 0


def test_the_policy_terms_are_named_as_a_resource_not_by_a_path():
    assert PolicyTextFeaturizer().user_dict == JiebaTokenizer().user_dict == POLICY_TERMS == "policy_terms.txt"
    assert user_dict_path(POLICY_TERMS) == resource_path("policy_terms.txt")
    assert user_dict_path("/srv/terms/my_terms.txt") == Path("/srv/terms/my_terms.txt")
    assert user_dict_path(None) is None


def test_a_pickled_featurizer_holds_no_path_of_this_install(fitted):
    data = pickle.dumps(fitted)
    assert str(resource_path("policy_terms.txt")).encode() not in data
    assert b"resources/policy_terms" not in data
    assert fitted.word_.tokenizer.user_dict == "policy_terms.txt"


def test_an_unpickled_featurizer_finds_the_terms_where_this_install_has_them(texts, fitted, tmp_path, monkeypatch):
    data = pickle.dumps(fitted)
    # The model moves to another install: the resource is somewhere else now.
    elsewhere = tmp_path / "other-install" / "annotator" / "resources"
    elsewhere.mkdir(parents=True)
    shutil.copy(resource_path("policy_terms.txt"), elsewhere / "policy_terms.txt")
    asked = []
    monkeypatch.setattr(features_module, "resource_path", lambda name: asked.append(name) or elsewhere / name)
    loaded = pickle.loads(data)
    assert abs(loaded.transform(texts[:20]) - fitted.transform(texts[:20])).max() == 0
    assert "policy_terms.txt" in asked  # the tokenizer was rebuilt from the other install's copy


def test_a_featurizer_pickled_with_an_install_path_still_loads(texts, fitted):
    # Models saved before the terms were named by resource hold the absolute path of the install
    # they were fitted in, which need not exist here.
    old = pickle.loads(pickle.dumps(fitted))
    gone = "/opt/old-venv/lib/python3.11/site-packages/annotator/resources/policy_terms.txt"
    old.user_dict = gone
    old.word_.tokenizer.user_dict = gone
    data = pickle.dumps(old)
    assert gone.encode() in data
    loaded = pickle.loads(data)
    assert loaded.user_dict == loaded.word_.tokenizer.user_dict == "policy_terms.txt"
    assert abs(loaded.transform(texts[:20]) - fitted.transform(texts[:20])).max() == 0


def test_a_user_dictionary_path_is_kept_as_given(tmp_path):
    terms = tmp_path / "annotator" / "resources" / "my_terms.txt"
    assert portable_user_dict(str(terms)) == str(terms)  # not a bundled resource: a user's own file
    assert portable_user_dict(None) is None
    terms.parent.mkdir(parents=True)
    terms.write_text("发展集成电路\n", encoding="utf-8")
    tokenizer = pickle.loads(pickle.dumps(JiebaTokenizer(str(terms))))
    assert tokenizer.user_dict == str(terms)
    assert "发展集成电路" in tokenizer("发展集成电路产业")


def test_rows_are_unit_norm_per_block(fitted, texts):
    X = fitted.transform(texts[:50])
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    # char block + word block (weight 1) + opening block (weight 0.5)
    assert np.allclose(norms, np.sqrt(1 + 1 + 0.25), atol=1e-4)


def test_word_block_holds_dictionary_terms(fitted):
    names = set(fitted.get_feature_names_out())
    assert "w:集成电路" in names
    assert any(name.startswith("c:") for name in names)


def test_clause_opening_has_its_own_block(fitted):
    names = fitted.get_feature_names_out()
    assert "p:对" in set(names) and len(names) == fitted.n_features_out_
    # Only the first 10 characters count: same opening, same block; other opening, other block.
    X = fitted.transform(
        ["对集成电路设计企业给予研发补助。", "对集成电路设计企业给予人才奖励。", "高等院校应对集成电路企业开放。"]
    )
    opening = np.char.startswith(names.astype(str), "p:")
    assert np.allclose(X[0].toarray()[0, opening], X[1].toarray()[0, opening])
    assert not np.allclose(X[0].toarray()[0, opening], X[2].toarray()[0, opening])


def test_opening_block_can_be_switched_off(texts):
    featurizer = PolicyTextFeaturizer(prefix_chars=None).fit(texts[:50])
    assert featurizer.prefix_ is None
    assert not any(name.startswith("p:") for name in featurizer.get_feature_names_out())


def test_characters_only(texts):
    featurizer = PolicyTextFeaturizer(word_ngram_range=None, prefix_chars=None).fit(texts)
    assert featurizer.word_ is None
    assert featurizer.transform(texts[:3]).shape[1] == len(featurizer.char_.vocabulary_)


def test_min_df_scales_with_the_corpus(fitted):
    assert fitted.min_df_ == 1  # 300 texts keep every n-gram
    assert [_effective_min_df(5, n) for n in (10, 999, 1000, 2500, 5602, 100_000)] == [1, 1, 2, 3, 5, 5]


def test_unseen_text_and_empty_text_transform(fitted):
    X = fitted.transform(["", "完全没有见过的文字"])
    assert X.shape == (2, fitted.n_features_out_)
    assert X[0].nnz == 0


def test_bad_documents_are_named():
    with pytest.raises(
        InputError, match=r"^expected a list of texts, got a single string; wrap it in a list: \[text\]$"
    ):
        check_documents("一个条款")
    with pytest.raises(InputError, match="^text 1 is int, not str$"):
        check_documents(["一个条款", 3])
    with pytest.raises(InputError, match="^cannot fit the featurizer on zero texts$"):
        PolicyTextFeaturizer().fit([])
