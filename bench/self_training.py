"""Prototype, measured in docs/benchmarks.md (#18): self-training on the unlabeled pool.

After each fit, the pool clauses whose every label is furthest from its decision threshold (in
logit) get the model's own decisions as labels -- as many as there are real labels (``SHARE`` 1.0),
never a clause identical to a labeled one -- and the model is refitted on both. Calibration and
threshold tuning still read only the real labels (their approximate leave-group-out scores under
the augmented fit). Not in the product: it doubles the refit time and has not been confirmed on
enough report pairs; this script reproduces the figures.

Usage (one fold of the 5 grouped folds, as ``simulate_strategies.py --folds 5``):
    .venv/bin/python bench/self_training.py FOLD FIRST_SEED N_SEEDS SHARE random tempered
Writes bench/out/self_training/st_f{FOLD}_s{A}-{B}_sh{SHARE}.json and prints labels to 95%.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import simulate_strategies as B  # noqa: E402
from annotator.model.classifier import PolicyClassifier  # noqa: E402
from annotator.query.simulate import (  # noqa: E402
    SIMULATION_MODEL_PARAMS,
    featurize,
    grouped_folds,
    labels_to_reach,
    simulate,
)
from annotator.labels import load_label_config  # noqa: E402
from annotator.text.seedset import read_labeled_file  # noqa: E402
from annotator.model.training import label_matrix  # noqa: E402


class Pool:
    def __init__(self, X):
        self.X = sp.csr_matrix(X)
        self.keys = row_keys(self.X)

    def __deepcopy__(self, memo):
        return self


def row_keys(X):
    X = sp.csr_matrix(X)
    return [
        hash((X.indices[X.indptr[i] : X.indptr[i + 1]].tobytes(), X.data[X.indptr[i] : X.indptr[i + 1]].tobytes()))
        for i in range(X.shape[0])
    ]


def logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class SelfTrained(PolicyClassifier):
    def __init__(
        self,
        *,
        labels=(),
        C=1.0,
        nb_power=0.5,
        class_weight="balanced",
        threshold="tuned",
        relative=0.5,
        cv="loo",
        featurizer=None,
        n_jobs=1,
        random_state=0,
        merge_duplicate_labels=True,
        pool=None,
        share=1.0,
        min_labels=100,
    ):
        super().__init__(
            labels=labels,
            C=C,
            nb_power=nb_power,
            class_weight=class_weight,
            threshold=threshold,
            relative=relative,
            cv=cv,
            featurizer=featurizer,
            n_jobs=n_jobs,
            random_state=random_state,
            merge_duplicate_labels=merge_duplicate_labels,
        )
        self.pool = pool
        self.share = share
        self.min_labels = min_labels

    def fit_features(self, features, Y, groups=None):
        self._full = None
        super().fit_features(features, Y, groups)
        n = len(Y)
        if self.pool is None or n < self.min_labels or not self.share:
            return self
        P = self.predict_proba_features(self.pool.X)
        D = np.asarray(self.decide(P), dtype=np.int8)
        conf = np.abs(logit(P) - logit(self.thresholds_)).min(axis=1)
        seen = set(row_keys(features))
        free = np.array([k not in seen for k in self.pool.keys])
        conf[~free] = -np.inf
        k = min(int(self.share * n), int(free.sum()))
        if k < 1:
            return self
        rows = np.argsort(-conf)[:k]
        X2 = sp.vstack([sp.csr_matrix(features), self.pool.X[rows]], format="csr")
        Y2 = np.vstack([np.asarray(Y, dtype=np.int8), D[rows]])
        g = np.arange(n) if groups is None else np.asarray(groups)
        g2 = np.concatenate([g, g.max() + 1 + np.arange(k)])
        self._n_real = n
        super().fit_features(X2, Y2, g2)
        self._n_real = None
        self.n_train_ = n
        return self

    def _calibrate(self, features, Y, groups, nb_weights):
        n = getattr(self, "_n_real", None)
        if not n or n >= len(Y):
            return super()._calibrate(features, Y, groups, nb_weights)
        self._full = (features, Y, groups)
        try:
            return super()._calibrate(features[:n], Y[:n], groups[:n], nb_weights)
        finally:
            self._full = None

    def _leave_group_out_scores(self, features, Y, groups, nb_weights):
        full = getattr(self, "_full", None)
        if full is None:
            return super()._leave_group_out_scores(features, Y, groups, nb_weights)
        n = len(Y)
        return super()._leave_group_out_scores(full[0], full[1], full[2], nb_weights)[:n]


def main():
    fold, first, nseeds, share = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    names = sys.argv[5:]
    labels = load_label_config().labels
    examples = read_labeled_file(B.DATA, labels).examples
    texts = [e.text for e in examples]
    Y = label_matrix(examples, labels)
    X = featurize(texts, [], B.OUT / "cache")[0]
    fold_of = grouped_folds(texts, 5, rng=np.random.default_rng(0))
    test, pool = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
    shared = Pool(X[pool])
    params = dict(SIMULATION_MODEL_PARAMS, pool=shared, share=share)
    start = time.time()
    res = simulate(
        [texts[i] for i in pool],
        Y[pool],
        [texts[i] for i in test],
        Y[test],
        labels,
        names,
        features=(X[pool], X[test]),
        seeds=nseeds,
        first_seed=first,
        model_params=params,
        model_factory=SelfTrained,
        seed_size=50,
        batch_size=50,
        budget=2000,
    )
    out = {
        "fold": fold,
        "first": first,
        "n": nseeds,
        "share": share,
        "target": res["target_macro_f1"],
        "full": res["full_data"],
        "curves_per_seed": res["curves_per_seed"],
        "seconds": time.time() - start,
    }
    to95 = {s: [labels_to_reach(c, res["target_macro_f1"]) for c in res["curves_per_seed"][s]] for s in names}
    out["to95"] = to95
    out_dir = B.OUT.parent / "self_training"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"st_f{fold}_s{first}-{first + nseeds - 1}_sh{share}.json"
    path.write_text(json.dumps(out))
    print(fold, share, to95, "full", res["full_data"]["macro_f1"], round(time.time() - start), "s")


if __name__ == "__main__":
    main()
