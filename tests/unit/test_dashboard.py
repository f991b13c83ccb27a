"""Tests for backend.dashboard (and annotator.review.dashboard): panels, figures, resolving, login.

The store is a real SQLite file filled with real clauses of the seed data, their seed labels, and
synthetic annotations of several annotators who each miss or add labels at their own rate.
"""

from __future__ import annotations

import functools
import html
import json
import random
import re
import stat
from datetime import datetime, timedelta, UTC
from html.parser import HTMLParser
from itertools import combinations

import numpy as np
import pytest
from nltk.metrics.agreement import AnnotationTask
from nltk.metrics.distance import binary_distance, masi_distance
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from annotator.review.agreement import agreement_report
from annotator.errors import InputError
from annotator.labels import TASKS_DIR
from annotator.text.normalize import clause_id
from annotator.storage.registry import PRUNED_KEY
from annotator.review.dashboard import blind_report, stop_signal_for_store
from annotator.text.seedset import read_labeled_file
from annotator.settings import Settings
from annotator.storage.store import Store
from annotator.types import Annotation, Clause
from backend import create_app
from backend.dashboard import format_figure, heat_color, nice_ticks

SEED_TSV = TASKS_DIR / "seed_labels.tsv"
ANNOTATORS = ("chen-jie", "wang.wei", "zhang_min", "李娜")
PANELS = ("progress", "throughput", "annotators", "labels", "agreement", "annotator-matrix", "learning-curve", "queue")


# --------------------------------------------------------------------------- a realistic project


@functools.cache
def seed_examples(labels: tuple[str, ...]) -> tuple:
    """The seed file's clauses and labels (read once: normalizing 7,000 lines takes most of a second)."""
    return tuple(read_labeled_file(SEED_TSV, labels).examples)


def build_project(
    store: Store,
    labels: tuple[str, ...],
    *,
    n_clauses: int,
    annotators=ANNOTATORS,
    per_clause=(2, 3),
    n_seed: int = 60,
    n_versions: int = 5,
    n_adjudicated: int = 3,
    seed: int = 0,
    hours: float = 40.0,
) -> dict:
    """Fill ``store`` with real clauses and synthetic multi-annotator labels; return what was made.

    Every annotator has their own miss and extra-label rates, so agreement varies by pair and label.
    """
    rng = random.Random(seed)
    examples = list(seed_examples(labels))
    rng.shuffle(examples)
    examples = examples[:n_clauses]
    truth = {e.id: e.labels for e in examples}
    store.add_clauses(Clause(e.id, e.text, None, "", i) for i, e in enumerate(examples))
    now = datetime.now(UTC)
    noise = {name: (rng.uniform(0.03, 0.25), rng.uniform(0.03, 0.2)) for name in annotators}
    n_labeled = int(len(examples) * 0.8)
    n_annotations = 0
    with store.transaction():
        for e in examples[:n_seed]:
            store.save_annotation(Annotation(e.id, e.labels, "seed", "seed"))
        for e in examples[:n_labeled]:
            for name in rng.sample(annotators, rng.randint(*per_clause)):
                miss, extra = noise[name]
                chosen = {label for label in e.labels if rng.random() > miss}
                if rng.random() < extra:
                    chosen.add(rng.choice(labels))
                stamp = (now - timedelta(minutes=rng.uniform(0, hours * 60))).isoformat()
                store.save_annotation(
                    Annotation(e.id, tuple(sorted(chosen)), name, "label_studio", created_at=stamp, updated_at=stamp)
                )
                n_annotations += 1
        for v in range(1, n_versions + 1):
            macro = 0.35 + 0.5 * (1 - 0.6**v) + rng.uniform(-0.02, 0.02)
            # Rows only: the versions' files were pruned (a version without its file is otherwise broken).
            store.add_model_version(
                f"model-{v:05d}.pkl",
                40 * v,
                {"macro_f1": macro, PRUNED_KEY: "2026-11-01", "micro_f1": min(macro + 0.08, 1.0), "n": 50},
            )
        predictions = []
        for e in examples:
            chosen = set(e.labels)
            if rng.random() < 0.2:
                chosen ^= {rng.choice(labels)}
            predictions.append((e.id, tuple(label for label in labels if label in chosen), rng.uniform(0.5, 1.0)))
        if n_versions:
            store.save_predictions(n_versions, predictions)
        unlabeled = [e.id for e in examples[n_labeled:]]
        store.record_push(
            1, [(cid, 1000 + i, i) for i, cid in enumerate(unlabeled[:30])], batch=1, model_version=n_versions or None
        )
        for e in examples[:n_adjudicated]:
            store.adjudicate(e.id, e.labels, "lead", "seeded in the test")
    return {"truth": truth, "n_annotations": n_annotations, "n_pushed": min(30, len(unlabeled))}


def expected_report(store: Store, labels: tuple[str, ...]) -> dict:
    """The report as ``annotator agreement --json`` computes it: annotations, adjudications, latest model."""
    latest = store.latest_model_version()
    predictions = store.predictions(latest.version) if latest else {}
    return agreement_report(
        store.annotations(),
        labels,
        adjudicated=store.adjudications(),
        model={cid: chosen for cid, (chosen, _) in predictions.items()},
    ).to_dict()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def project(settings):
    with Store(settings.db_path) as store:
        made = build_project(store, settings.labels, n_clauses=240)
    return made


@pytest.fixture
def app(settings, project):
    return create_app(settings, start_queue=False)


@pytest.fixture
def client(app):
    return app.test_client()


# --------------------------------------------------------------------------- reading the page


class _Page(HTMLParser):
    """Collects figures (data-figure), stats (data-stat), queue clauses, panels and form tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, list[dict]] = {}
        self.stats: dict[str, str] = {}
        self.queue: list[str] = []
        self.ids: set[str] = set()
        self.csrf: str | None = None
        self._open: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "article" and "data-clause" in attrs:
            self.queue.append(attrs["data-clause"])
        if tag == "input" and attrs.get("name") == "csrf_token":
            self.csrf = attrs["value"]
        if "data-figure" in attrs or "data-stat" in attrs:
            self._open.append((tag, attrs | {"text": ""}))

    def handle_data(self, data):
        for _, attrs in self._open:
            attrs["text"] += data

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            _, attrs = self._open.pop()
            if "data-figure" in attrs:
                self.figures.setdefault(attrs["data-figure"], []).append(attrs)
            else:
                self.stats[attrs["data-stat"]] = attrs["text"].strip()


def read_page(response) -> _Page:
    page = _Page()
    page.feed(response.get_data(as_text=True))
    return page


def lookup(report: dict, path: str):
    value = report
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def shown(value, kind: str) -> str:
    """The page's rounding, written out independently of backend.dashboard."""
    if value is None:
        return "—"
    return {"coef": f"{value:.3f}", "share": f"{100 * value:.1f}%", "int": f"{value:,}"}[kind]


FIGURE_PATHS = [
    "n_items",
    "n_annotators",
    "set_level.krippendorff_alpha_masi",
    "set_level.exact_match",
    "set_level.mean_jaccard",
] + [
    f"per_label.{{i}}.{key}" for key in ("positives", "agreement", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha")
]


# --------------------------------------------------------------------------- the page


def test_every_panel_is_rendered_with_chinese_labels(client, settings):
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    body = response.get_data(as_text=True)
    page = read_page(response)
    assert set(PANELS) <= page.ids
    for label in settings.labels:  # label distribution and agreement rows, in label-set order
        assert body.count(f'data-label="{label}"') == 2
    assert body.index(f'data-label="{settings.labels[0]}"') < body.index(f'data-label="{settings.labels[-1]}"')
    assert "李娜" in body  # an annotator with a Chinese name
    assert body.count("<svg") == 3  # throughput, heat map, learning curve
    assert 'lang="zh-CN"' in body
    assert "/dashboard/static/dashboard.css" in body
    css = client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200 and b"Noto Sans CJK SC" in css.data
    css.close()


def test_shown_figures_match_the_agreement_report(client, settings):
    with Store(settings.db_path) as store:
        report = expected_report(store, settings.labels)
    page = read_page(client.get("/dashboard"))
    expected_paths = {p for p in FIGURE_PATHS if "{i}" not in p}
    expected_paths |= {p.format(i=i) for p in FIGURE_PATHS if "{i}" in p for i in range(len(settings.labels))}
    expected_paths |= {f"pairs.{k}.cohen_kappa" for k in range(len(report["pairs"]))}
    for i in range(len(report["per_annotator"])):
        expected_paths |= {
            f"per_annotator.{i}.{key}"
            for key in ("n_annotations", "n_items", "adjudicated.exact_match", "model.exact_match")
        }
    assert expected_paths <= set(page.figures)
    assert len(report["pairs"]) == 6 and report["n_annotators"] == 4 and report["n_items"] > 100
    for path, elements in page.figures.items():
        value = lookup(report, path)
        for element in elements:
            assert element["text"].strip() == shown(value, element["data-kind"]), path
            assert element["data-value"] == ("" if value is None else str(value)), path
    # every pair appears twice in the heat map (above and below the diagonal)
    assert all(len(page.figures[f"pairs.{k}.cohen_kappa"]) == 2 for k in range(len(report["pairs"])))


def safe_masi(a: frozenset, b: frozenset) -> float:
    """nltk's MASI distance, with 0 between two empty sets (nltk divides by zero there)."""
    return 0.0 if not a and not b else masi_distance(a, b)


def test_shown_figures_agree_with_sklearn_statsmodels_nltk(client, settings):
    """The page's unrounded values against the reference implementations, to 1e-9."""
    page = read_page(client.get("/dashboard"))
    report = json.loads(client.get("/dashboard/agreement.json").data)
    value = lambda path: float(page.figures[path][0]["data-value"])  # noqa: E731
    with Store(settings.db_path) as store:
        annotations = [a for a in store.annotations() if a.source != "seed"]
    items: dict[str, dict[str, frozenset]] = {}
    for a in annotations:
        items.setdefault(a.clause_id, {})[a.annotator] = frozenset(a.labels)
    items = {cid: sets for cid, sets in items.items() if len(sets) >= 2}
    names = sorted({name for sets in items.values() for name in sets})
    checked = 0
    for i, label in enumerate(settings.labels):
        rows = [{name: int(label in chosen) for name, chosen in sets.items()} for sets in items.values()]
        ratings = [r for row in rows for r in row.values()]
        if not 0 < sum(ratings) < len(ratings):  # no variation: the page shows "—"
            assert page.figures[f"per_label.{i}.krippendorff_alpha"][0]["text"] == "—"
            continue
        kappas = []
        for a, b in combinations(names, 2):
            shared = [row for row in rows if a in row and b in row]
            ya, yb = [row[a] for row in shared], [row[b] for row in shared]
            if len(set(ya) | set(yb)) == 2:
                kappas.append(cohen_kappa_score(ya, yb, labels=[0, 1]))
        assert value(f"per_label.{i}.cohen_kappa") == pytest.approx(np.mean(kappas), abs=1e-9)
        k = report["per_label"][i]["fleiss_n_raters"]
        table, _ = aggregate_raters(np.array([list(row.values()) for row in rows if len(row) == k]), n_cat=2)
        if page.figures[f"per_label.{i}.fleiss_kappa"][0]["text"] != "—":
            assert value(f"per_label.{i}.fleiss_kappa") == pytest.approx(fleiss_kappa(table), abs=1e-9)
        task = AnnotationTask(
            [(name, cid, int(label in chosen)) for cid, sets in items.items() for name, chosen in sets.items()],
            distance=binary_distance,
        )
        assert value(f"per_label.{i}.krippendorff_alpha") == pytest.approx(task.alpha(), abs=1e-9)
        checked += 1
    assert checked >= 20
    # Set level: nltk's alpha with the MASI distance over whole label sets
    task = AnnotationTask(
        [(name, cid, chosen) for cid, sets in items.items() for name, chosen in sets.items()], distance=safe_masi
    )
    assert value("set_level.krippendorff_alpha_masi") == pytest.approx(task.alpha(), abs=1e-9)
    # Pairs: sklearn's kappa pooled over every label of the shared clauses
    for k, pair in enumerate(report["pairs"]):
        a, b = pair["annotators"]
        shared = [sets for sets in items.values() if a in sets and b in sets]
        ya = [int(label in s[a]) for s in shared for label in settings.labels]
        yb = [int(label in s[b]) for s in shared for label in settings.labels]
        assert value(f"pairs.{k}.cohen_kappa") == pytest.approx(cohen_kappa_score(ya, yb), abs=1e-9)


def test_progress_counts_match_the_store(client, settings, project):
    page = read_page(client.get("/dashboard"))
    with Store(settings.db_path) as store:
        assert page.stats["n_clauses"] == f"{store.count_clauses():,}" == "240"
        assert page.stats["n_labeled"] == f"{len(store.labeled_clause_ids()):,}"
        assert page.stats["n_pushed"] == str(project["n_pushed"]) == "30"
        assert page.stats["n_annotations"] == f"{project['n_annotations']:,}"
        assert page.stats["n_adjudicated"] == "3"
    assert re.fullmatch(r"\d+\.\d", page.stats["labels_per_hour"])


def test_agreement_json_is_the_report(client, settings):
    response = client.get("/dashboard/agreement.json")
    assert response.status_code == 200
    with Store(settings.db_path) as store:
        assert json.loads(response.data) == json.loads(json.dumps(expected_report(store, settings.labels)))


def test_learning_curve_shows_every_version(client, settings):
    body = client.get("/dashboard").get_data(as_text=True)
    with Store(settings.db_path) as store:
        versions = store.model_versions()
    assert len(versions) == 5
    for v in versions:
        assert re.search(rf'data-version="{v.version}">{v.metrics["macro_f1"]:.3f}<', body)
    assert f'data-curve="macro_f1">{versions[-1].metrics["macro_f1"]:.3f}<' in body


def test_queue_limit_and_bad_queue_argument(client):
    page = read_page(client.get("/dashboard?queue=2"))
    assert len(page.queue) == 2
    body = client.get("/dashboard?queue=2").get_data(as_text=True)
    assert 'href="/dashboard/?queue=52#queue">Show 52 of ' in body
    assert len(read_page(client.get("/dashboard?queue=500")).queue) > 2
    for bad in ("-1", "0", "501", "all", "²"):
        response = client.get(f"/dashboard?queue={bad}")
        assert response.status_code == 400
        assert f"queue must be a number of entries from 1 to 500, got '{bad}'" in html.unescape(
            response.get_data(as_text=True)
        )


def test_empty_project_renders(tmp_path):
    settings = Settings(home=tmp_path / "empty")
    client = create_app(settings, start_queue=False).test_client()
    response = client.get("/dashboard/")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Nothing to resolve." in body and "No model trained yet" in body
    assert "no clause has two or more annotators yet" in body


# --------------------------------------------------------------------------- resolving


def test_resolve_stores_an_adjudication_and_the_item_leaves_the_queue(client, settings):
    page = read_page(client.get("/dashboard"))
    clause_id = page.queue[0]
    chosen = list(settings.labels[:2])
    with Store(settings.db_path) as store:
        before = store.annotations()
    response = client.post(
        "/dashboard/resolve",
        data={
            "csrf_token": page.csrf,
            "clause_id": clause_id,
            "labels": chosen,
            "resolver": "组长 Li",
            "note": "checked",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/dashboard/#queue")
    with Store(settings.db_path) as store:
        assert store.adjudications()[clause_id] == tuple(chosen)
        assert store.annotations() == before  # the annotators' answers are untouched
    after = client.get("/dashboard")
    assert clause_id not in read_page(after).queue
    body = html.unescape(after.get_data(as_text=True))
    assert f"Resolved {clause_id} as {'、'.join(chosen)} — by 组长 Li." in body
    assert 'value="组长 Li"' in body  # the resolver name is remembered for the next item


def test_resolve_puts_labels_in_label_set_order_and_allows_no_label(client, settings):
    page = read_page(client.get("/dashboard"))
    first, second = page.queue[:2]
    labels = settings.labels
    client.post(
        "/dashboard/resolve",
        data={
            "csrf_token": page.csrf,
            "clause_id": first,
            "labels": [labels[5], labels[1], labels[5]],
            "resolver": "lead",
        },
    )
    client.post("/dashboard/resolve", data={"csrf_token": page.csrf, "clause_id": second, "resolver": "lead"})
    with Store(settings.db_path) as store:
        assert store.adjudications()[first] == (labels[1], labels[5])
        assert store.adjudications()[second] == ()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"labels": ["财政补助"]}, "label '财政补助' is not in the label set; did you mean '财政支持'?"),
        ({"clause_id": "0000000000000000"}, "unknown clause '0000000000000000': it is not in this project's store"),
        ({"clause_id": ""}, "clause_id is missing"),
        ({"resolver": "  "}, "resolver is empty"),
        ({"resolver": "x" * 101}, "resolver has 101 characters (limit 100)"),
        ({"csrf_token": "forged"}, "the form's security token is missing or out of date"),
        ({"csrf_token": ""}, "the form's security token is missing or out of date"),
    ],
)
def test_resolve_rejects_bad_input_with_400_and_a_message(client, settings, change, message):
    page = read_page(client.get("/dashboard"))
    form = {"csrf_token": page.csrf, "clause_id": page.queue[0], "labels": ["财政支持"], "resolver": "lead"}
    with Store(settings.db_path) as store:
        before = store.adjudications()
    response = client.post("/dashboard/resolve", data=form | change)
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    json_response = client.post("/dashboard/resolve", data=form | change, headers={"Accept": "application/json"})
    assert json_response.status_code == 400 and message in json_response.get_json()["error"]
    with Store(settings.db_path) as store:
        assert store.adjudications() == before


def test_resolve_from_another_origin_is_rejected(client, settings):
    page = read_page(client.get("/dashboard"))
    response = client.post(
        "/dashboard/resolve",
        headers={"Origin": "http://evil.example"},
        data={"csrf_token": page.csrf, "clause_id": page.queue[0], "labels": ["财政支持"], "resolver": "x"},
    )
    assert response.status_code == 400
    assert "form posted from http://evil.example, not from this dashboard" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- login


def test_login_is_required_when_a_password_is_set(tmp_path):
    settings = Settings(home=tmp_path / "home", dashboard_password="开门 sesame")
    with Store(settings.db_path) as store:
        build_project(store, settings.labels, n_clauses=60, n_seed=10)
    client = create_app(settings, start_queue=False).test_client()
    for path in ("/dashboard", "/dashboard/?queue=5", "/dashboard/agreement.json"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/dashboard/login?next=" in response.headers["Location"]
    response = client.post("/dashboard/resolve", data={"clause_id": "x", "resolver": "x"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/dashboard/login")
    login = client.get("/dashboard/login?next=/dashboard/%3Fqueue%3D5")
    assert login.status_code == 200 and 'type="password"' in login.get_data(as_text=True)
    token = read_page(login).csrf
    wrong = client.post("/dashboard/login", data={"csrf_token": token, "password": "sesame"})
    assert wrong.status_code == 401 and "Wrong password." in wrong.get_data(as_text=True)
    right = client.post(
        "/dashboard/login", data={"csrf_token": token, "password": "开门 sesame", "next": "/dashboard/?queue=5"}
    )
    assert right.status_code == 303 and right.headers["Location"] == "/dashboard/?queue=5"
    page = client.get("/dashboard")
    assert page.status_code == 200 and "Log out" in page.get_data(as_text=True)
    out = client.post("/dashboard/logout", data={"csrf_token": read_page(page).csrf})
    assert out.status_code == 303
    assert client.get("/dashboard").status_code == 302


def test_login_never_redirects_to_another_site(tmp_path):
    settings = Settings(home=tmp_path / "home", dashboard_password="pw")
    client = create_app(settings, start_queue=False).test_client()
    token = read_page(client.get("/dashboard/login")).csrf
    for target in ("https://evil.example/", "//evil.example/dashboard", "/health"):
        response = client.post("/dashboard/login", data={"csrf_token": token, "password": "pw", "next": target})
        assert response.headers["Location"] == "/dashboard/", target


def test_login_page_redirects_when_no_password_is_set(client):
    response = client.get("/dashboard/login")
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard/"


def test_changing_the_password_logs_everyone_out(tmp_path):
    settings = Settings(home=tmp_path / "home", dashboard_password="first")
    client = create_app(settings, start_queue=False).test_client()
    token = read_page(client.get("/dashboard/login")).csrf
    client.post("/dashboard/login", data={"csrf_token": token, "password": "first"})
    assert client.get("/dashboard").status_code == 200
    other = create_app(settings.replace(dashboard_password="second"), start_queue=False).test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    assert other.get("/dashboard").status_code == 302


def test_session_key_is_kept_in_the_project_home(tmp_path):
    settings = Settings(home=tmp_path / "home")
    first = create_app(settings, start_queue=False)
    second = create_app(settings, start_queue=False)
    key_file = settings.home / "secret_key"
    assert first.secret_key == second.secret_key and len(first.secret_key) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.config["SESSION_COOKIE_SAMESITE"] == "Lax"


# --------------------------------------------------------------------------- helpers


def test_format_figure():
    assert [format_figure(v) for v in (0.81249, -0.0004, 1.0, None, float("nan"))] == [
        "0.812",
        "-0.000",
        "1.000",
        "—",
        "—",
    ]
    assert format_figure(0.5, "share") == "50.0%" and format_figure(1234, "int") == "1,234"
    assert format_figure(12.345, "rate") == "12.3"


def test_nice_ticks_and_heat_colors():
    assert nice_ticks(37) == [0, 10, 20, 30, 40]
    assert nice_ticks(0) == [0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(9) == [0, 2.5, 5.0, 7.5, 10.0]
    assert heat_color(0.0)[0] == "#ffffd9" and heat_color(1.0) == ("#0c2c84", "#ffffff")
    assert heat_color(None)[0] == "#eef0f3" and heat_color(-0.2)[0] == "#f4a582"


def test_a_damaged_session_key_file_is_named(tmp_path):
    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    (settings.home / "secret_key").write_text("not hex", encoding="ascii")
    with pytest.raises(InputError, match=r"secret_key does not hold a session key .*; delete it and start"):
        create_app(settings, start_queue=False)


# --------------------------------------------------------------------------- what needs attention


def alerts_shown(body: str) -> list[str]:
    """The items of the "Needs attention" panel, [] when the page has none."""
    if 'id="alerts"' not in body:
        return []
    panel = body.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    return [html.unescape(item.split("</li>", 1)[0]) for item in panel.split("<li>")[1:]]


def test_a_healthy_project_shows_no_alert(client):
    assert alerts_shown(client.get("/dashboard/").get_data(as_text=True)) == []


def test_a_connected_project_without_an_api_key_is_the_first_thing_a_lead_sees(settings, project):
    from annotator.cycle.loop import PROJECT_KEY

    with Store(settings.db_path) as store:
        store.set_meta(PROJECT_KEY, "4")
    body = create_app(settings, start_queue=False).test_client().get("/dashboard/").get_data(as_text=True)
    (alert,) = alerts_shown(body)
    assert alert.startswith(
        "Batches cannot be pushed: the project is connected to Label Studio project 4, "
        "but LABEL_STUDIO_API_KEY is not set"
    )
    assert body.index('id="alerts"') < body.index('id="progress"')


def test_a_failed_retrain_and_an_empty_label_studio_queue_are_shown_without_secrets(settings, project):
    with Store(settings.db_path) as store:
        run = store.start_train_run(40)
        store.finish_train_run(run, error="LabelStudioError: refused token tok-SECRET-123\nTraceback ...")
        for i, pushed in enumerate(store.pending_pushed_tasks()):  # the annotators labeled every task
            store.save_annotation(
                Annotation(
                    pushed.clause_id,
                    (settings.labels[0],),
                    "chen-jie",
                    "label_studio",
                    ls_annotation_id=9000 + i,
                    ls_task_id=pushed.ls_task_id,
                )
            )
        unlabeled = store.count_clauses() - len(store.labeled_clause_ids())
    app = create_app(settings.replace(ls_api_key="tok-SECRET-123"), start_queue=False)
    failed, empty = alerts_shown(app.test_client().get("/dashboard/").get_data(as_text=True))
    assert (
        failed.startswith("The last retrain (started 20")
        and "UTC) failed: LabelStudioError: refused token ***." in failed
    )
    assert "SECRET" not in failed and "Traceback" not in failed
    assert empty.startswith(f"No task is waiting in Label Studio, although {unlabeled:,} clauses are unlabeled")


def test_stop_signal_not_policy_lines_and_blind_overlap_are_shown(client, settings):
    """The leads see when to stop, what ingestion should have dropped, and whether overlap was blind."""
    with Store(settings.db_path) as store:
        lines = ["近日，市科技局召开会议。", "近日，记者从市发改委获悉。", "据悉，本次活动吸引了众多企业。"]
        store.add_clauses([Clause(clause_id(t), t) for t in lines])
        for i, text in enumerate(lines):
            store.save_annotation(
                Annotation(
                    clause_id(text), (), "ann@example.com", "label_studio", ls_annotation_id=7000 + i, not_policy=True
                )
            )
        (v,) = [v for v in store.model_versions()][-1:]
        shared = clause_id(lines[0])
        store.save_annotation(
            Annotation(
                shared,
                (),
                "second@example.com",
                "label_studio",
                ls_annotation_id=7100,
                not_policy=True,
                prefill_version=None,
                created_at="2099-01-01T00:00:00Z",
                updated_at="2099-01-01T00:00:00Z",
            )
        )
        expected = stop_signal_for_store(store).sentence
        blind = blind_report(store)
    page = client.get("/dashboard/").get_data(as_text=True)
    assert re.search(r'data-stat="not_policy">3<', page)
    assert "近日，… (2)" in page and "据悉，… (1)" in page
    # The seeded project's annotations carry no pre-fill: every double annotation there is blind,
    # and so is the one added here.
    assert blind.n_blind == blind.n_double > 1 and f'data-blind="{blind.n_blind}/{blind.n_double}"' in page
    assert html.escape(expected) in page and v.version >= 1
