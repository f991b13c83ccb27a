"""No tracebacks from the CLI (issue 16): generated bad arguments, config files and environments.

Every case must end with exit 1 (an error message) or 2 (a usage error), print no traceback, and
leave the project's store exactly as it was. Hypothesis drives CliRunner; a few cases run the
real console entry point in a subprocess (what a user's shell sees, including `serve`'s exec).
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from annotator import ModelRegistry, Settings, Store
from annotator.cli import main
from annotator.text.normalize import clause_id
from annotator.settings import STRATEGY_NAMES
from annotator.types import Clause
from tests.conftest import SEED_TSV, report_line

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = 40  # per generated family; the total is reported at the end of the module
RUNS: list[str] = []  # every CLI case run, by family (counted for the report)


@pytest.fixture(scope="module", autouse=True)
def report_case_count(request):
    yield
    families: dict[str, int] = {}
    for family in RUNS:
        families[family] = families.get(family, 0) + 1
    report_line(request.config, f"\ncli_fuzz cases: {len(RUNS)} {families}")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A home with clauses, an adjudication and one model version whose file was then corrupted."""
    root = tmp_path_factory.mktemp("cli-fuzz")
    home = root / "home"
    with Store(home / "annotator.db") as store:
        texts = ["对符合条件的企业给予贷款贴息支持。", "设立专项资金，支持集成电路产业发展。"]
        store.add_clauses([Clause(clause_id(t), t) for t in texts])
        store.adjudicate(clause_id(texts[0]), ("财政支持",), "lead@example.com", "")
        version = ModelRegistry(home / "models", store).save({"not": "a model"}, n_train=2)
    Path(version.path).write_bytes(b"\x80\x04corrupt")
    (root / "a-file").write_text("not a folder")
    (root / "adir").mkdir()
    return root, home


def snapshot(home: Path) -> list[str]:
    """Every row of the store, as SQL text (read-only; WAL bookkeeping does not count)."""
    conn = sqlite3.connect(f"file:{home / 'annotator.db'}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def run_case(
    project,
    family: str,
    args: list[str],
    *,
    env: dict | None = None,
    config: bytes | None = None,
    stdin: str = "对企业给予贷款贴息。\n",
) -> None:
    root, home = project
    before = snapshot(home)
    full_env = {"ANNOTATOR_HOME": str(home), "ANNOTATOR_CONFIG": None, **(env or {})}
    if config is not None:
        (root / "config.toml").write_bytes(config)
        args = ["--config", str(root / "config.toml"), *args]
    old = os.getcwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(main, args, env=full_env, input=stdin, catch_exceptions=True)
    finally:
        os.chdir(old)
    RUNS.append(family)
    shown = f"{family}: annotator {' '.join(args)} env={env} config={config!r:.200}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), shown + "".join(
        __import__("traceback").format_exception(result.exception)
    )
    assert result.exit_code in (1, 2), shown
    assert "Traceback" not in result.output, shown
    assert result.output.startswith(("Error", "Usage")) or "\nError: " in result.output, shown
    assert snapshot(home) == before, shown


HSETTINGS = hsettings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- bad settings values

INT_FIELDS = (
    "batch_size",
    "queue_window",
    "retrain_every",
    "min_train_labels",
    "keep_versions",
    "low_water",
    "max_request_bytes",
    "seed",
    "port",
    "workers",
    "threads",
)
FLOAT_FIELDS = ("retrain_delay", "reconcile_every", "overlap_share")
bad_int = st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32), st.just(0))
bad_float = st.one_of(
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.floats(max_value=-1e-9, allow_nan=False),
    st.floats(min_value=1e7, allow_nan=False, allow_infinity=False),
)
not_a_strategy = st.text(min_size=1, max_size=20).filter(lambda s: s not in STRATEGY_NAMES)


def toml_value(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').encode("unicode_escape").decode("ascii") + '"'
    return str(value).lower() if isinstance(value, bool) else str(value)


@st.composite
def bad_setting(draw):
    """One (key, value) that Settings must refuse, with the reason it is bad."""
    kind = draw(st.sampled_from(["int", "float", "strategy", "type", "unknown", "url"]))
    if kind == "int":
        key = draw(st.sampled_from(INT_FIELDS))
        value = draw(bad_int)
        if key == "seed" and value == 0:
            value = -1
        if key == "max_request_bytes" and 0 < value:
            value = 2**31
        return key, value
    if kind == "float":
        key = draw(st.sampled_from(FLOAT_FIELDS))
        value = draw(bad_float)
        if key != "overlap_share" and 1 < value < 7 * 86_400:
            value = -value
        return key, value
    if kind == "strategy":
        return "strategy", draw(not_a_strategy)
    if kind == "type":
        key = draw(st.sampled_from(INT_FIELDS + FLOAT_FIELDS + ("session_cookie_secure",)))
        return key, draw(st.sampled_from(["ten", [1, 2], 1.5] if key in INT_FIELDS else ["ten", [1]]))
    if kind == "unknown":
        name = draw(
            st.from_regex(r"[a-z][a-z_]{2,15}", fullmatch=True).filter(
                lambda k: k not in {f for f in Settings.__dataclass_fields__}
            )
        )
        return name, 1
    return draw(st.sampled_from(["ls_url", "backend_url"])), draw(
        st.sampled_from(["localhost:8080", "ftp://x", "", "http://", "javascript:alert(1)"])
    )


@HSETTINGS
@given(setting=bad_setting(), table=st.booleans())
def test_bad_config_files_are_an_error_not_a_traceback(project, setting, table):
    key, value = setting
    if isinstance(value, list):
        text = f"{key} = [{', '.join(map(toml_value, value))}]"
    else:
        text = f"{key} = {toml_value(value)}"
    config = (("[annotator]\n" if table else "") + text + "\n").encode("utf-8")
    run_case(project, "config file", ["status"], config=config)


@HSETTINGS
@given(
    data=st.one_of(
        st.binary(min_size=1, max_size=40).map(lambda b: b"\xff" + b),  # not UTF-8
        st.text(max_size=40).map(lambda t: ("[[" + t).encode("utf-8", "surrogatepass")),
        st.sampled_from(
            [
                b"annotator = 5\n",
                b'annotator = "x"\n',
                b"[annotator]\nhome = 5\n",
                b"seed = 1\nseed = 2\n",
                b"= 3\n",
                b"batch_size = 1e400\n",
            ]
        ),
    )
)
def test_undecodable_or_malformed_config_files_are_an_error(project, data):
    run_case(project, "config bytes", ["status"], config=data)


@HSETTINGS
@given(
    setting=bad_setting(),
    raw=st.sampled_from([None, "nan", "inf", "-1", "abc", "", " ", "1e999", "0x10", "٣", "9" * 30]),
)
def test_bad_environment_values_are_an_error(project, setting, raw):
    key, value = setting
    if key not in Settings.__dataclass_fields__:
        return  # unknown ANNOTATOR_* variables are ignored (other tools share the prefix)
    kind = str(Settings.__dataclass_fields__[key].type)
    text = str(value) if raw is None or kind == "str" else raw
    if (
        kind == "int"
        and raw is not None
        and raw.strip().lstrip("-").isdigit()
        and 0 <= int(raw) < 2**31
        and key in ("seed",)
    ):
        text = "-1"
    if kind == "float" and raw in ("-1",) and key == "overlap_share":
        text = "-1"
    if kind == "int" and text.strip().isdigit() and int(text) >= 1 and key != "seed":
        if int(text) <= 64:
            text = "-1"
    if (
        kind == "str"
        and key in ("ls_url", "backend_url")
        and text.lower().startswith(("http://", "https://"))
        and len(text) > 8
    ):
        text = "nope"
    if key == "strategy" and text in STRATEGY_NAMES:
        text = "nope"
    if kind == "bool" and text.strip().lower() in ("1", "0", "true", "false", "yes", "no", "on", "off", ""):
        text = "maybe"
    try:
        Settings.from_env({f"ANNOTATOR_{key.upper()}": text}, home=project[1])
    except Exception:  # noqa: BLE001 - only values Settings refuses make a case
        run_case(project, "environment", ["status"], env={f"ANNOTATOR_{key.upper()}": text})


# --------------------------------------------------------------------------- bad arguments

words = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
bad_count = st.one_of(
    st.integers(max_value=0).map(str),
    words.filter(lambda w: not w.strip().isdigit()),
    st.just("nan"),
    st.just("1e9999"),
)


@st.composite
def bad_arguments(draw):
    """A command line with exactly one thing wrong, which the CLI must catch before any work."""
    family = draw(
        st.sampled_from(
            [
                "simulate",
                "predict",
                "export",
                "train",
                "agreement",
                "serve",
                "home",
                "ingest",
                "resolve",
                "evaluate",
                "global",
            ]
        )
    )
    labeled = str(SEED_TSV)
    if family == "simulate":
        base = ["simulate", "--labeled", labeled, "--test", labeled]
        which = draw(st.sampled_from(["count", "strategy", "plot", "out", "both"]))
        if which == "count":
            return base + [
                draw(st.sampled_from(["--seeds", "--batch-size", "--budget", "--seed-size"])),
                draw(bad_count),
            ]
        if which == "strategy":
            return base + ["--strategy", draw(not_a_strategy)]
        if which == "both":
            return base + ["--folds", "3"]
        target = draw(st.sampled_from(["missing/dir/x.png", "adir", "a-file/x.json", "/proc/nope/x"]))
        return base + ["--plot" if which == "plot" else "--out", target]
    if family == "predict":
        option = draw(st.sampled_from(["--version", "--top", "corrupt"]))
        if option == "--version":
            return [
                "predict",
                "--version",
                draw(st.one_of(words, st.integers(max_value=0).map(str), st.integers(min_value=2).map(str))),
            ]
        if option == "--top":
            return ["predict", "--top", draw(bad_count)]
        return ["predict"]  # the only model version is corrupt
    if family == "export":
        option = draw(st.sampled_from(["--split", "--format", "--policy", "--out", "overwrite-home"]))
        if option == "--split":
            return [
                "export",
                "--out",
                "exports/x",
                "--split",
                draw(st.one_of(words, st.just("0.5,0.5,0.5"), st.just("nan,0,1"))),
            ]
        if option == "--out":
            return ["export", "--out", draw(st.sampled_from(["/tmp", "..", "exports", "exports/../x", "/etc/x"]))]
        if option == "overwrite-home":
            return ["export", "--root", ".", "--out", "home", "--overwrite"]
        return ["export", "--out", "exports/x", option, draw(words)]
    if family == "train":
        return ["train", "--holdout", draw(st.one_of(st.just("nan"), st.just("-0.1"), st.just("0.9"), words))]
    if family == "agreement":
        return ["agreement", "--queue", draw(st.one_of(st.integers(max_value=-1).map(str), words))]
    if family == "serve":
        option = draw(st.sampled_from(["--port", "--threads", "--workers"]))
        return [
            "serve",
            option,
            draw(st.one_of(st.integers(max_value=0).map(str), st.integers(min_value=70_000).map(str), words)),
        ]
    if family == "home":
        return [
            "--home",
            draw(st.sampled_from(["a-file", "/proc/nope", "/dev/null", "a-file/sub"])),
            draw(st.sampled_from(["status", "agreement", "predict", "serve"])),
        ]
    if family == "ingest":
        return ["ingest", str(SEED_TSV), "--tasks-out", draw(st.sampled_from(["adir", "/dev/null", "a-file/x"]))]
    if family == "resolve":
        return ["resolve", "0000000000000000", draw(words), "--resolver", "lead"]
    if family == "evaluate":
        return ["evaluate", "--labeled", draw(st.sampled_from(["missing.tsv", "adir"]))]
    return [draw(st.sampled_from(["--verbose=x", "--home", "--config", "--nope", "nope"]))]


@hsettings(
    max_examples=3 * EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=bad_arguments())
def test_bad_arguments_are_an_error_not_a_traceback(project, args):
    run_case(project, f"arguments {args[0]}", args)


# --------------------------------------------------------------------------- real processes


def cli(*args: str, cwd: Path, env: dict | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "annotator", *args],
        cwd=cwd,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


@pytest.fixture
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


SUBPROCESS_CASES = {
    "undecodable config": (
        ["--config", "bad.toml", "status"],
        "Error: config file bad.toml is not UTF-8 text (invalid byte 0xff at offset 0); save it as UTF-8",
    ),
    "negative seed": (["status"], "Error: ANNOTATOR_SEED must be from 0 to 4294967295, got -1"),
    "NaN delay": (
        ["--config", "nan.toml", "status"],
        "Error: ANNOTATOR_RETRAIN_DELAY must be a finite number, got nan",
    ),
    "unknown strategy": (
        ["--config", "strategy.toml", "status"],
        "Error: ANNOTATOR_STRATEGY: unknown strategy 'best'; valid: " + ", ".join(STRATEGY_NAMES),
    ),
    "home is a file": (["--home", "a-file/sub", "status"], "Error: Not a directory (a-file/sub)"),
    "corrupt model": (["predict", "--version", "1"], None),
    "simulate --out unwritable": (
        ["simulate", "--labeled", str(SEED_TSV), "--test", str(SEED_TSV), "--out", "missing/r.json"],
        "Error: --out missing/r.json: the folder missing does not exist; create it or choose another path",
    ),
    "serve busy port": (
        ["serve", "--port", "{port}"],
        "Error: cannot listen on 127.0.0.1:{port}: Address already "
        "in use; stop what uses that port or choose another --port",
    ),
    "serve unknown host": (["serve", "--host", "no-such-host.invalid", "--port", "9"], None),
}


@pytest.mark.parametrize("case", list(SUBPROCESS_CASES))
def test_real_command_lines_exit_cleanly(project, case, busy_port):
    root, home = project
    (root / "bad.toml").write_bytes(b"\xffseed = 1\n")
    (root / "nan.toml").write_text("retrain_delay = nan\n")
    (root / "strategy.toml").write_text('strategy = "best"\n')
    args, expected = SUBPROCESS_CASES[case]
    args = [a.replace("{port}", str(busy_port)) for a in args]
    env = {"ANNOTATOR_HOME": str(home)} | ({"ANNOTATOR_SEED": "-1"} if case == "negative seed" else {})
    before = snapshot(home)
    result = cli(*args, cwd=root, env=env, stdin="对企业给予贷款贴息。\n")
    RUNS.append(f"subprocess {case}")
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    if expected is not None:
        assert last == expected.replace("{port}", str(busy_port))
    else:
        assert last.startswith("Error: "), result.stderr
    assert snapshot(home) == before


def test_strategy_names_in_settings_match_the_strategy_registry():
    from annotator.query.strategies import STRATEGIES

    assert set(STRATEGY_NAMES) == {"default", *STRATEGIES}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seed": -1}, "ANNOTATOR_SEED must be from 0 to 4294967295, got -1"),
        ({"seed": 2**32}, "ANNOTATOR_SEED must be from 0 to 4294967295, got 4294967296"),
        ({"retrain_delay": math.nan}, "ANNOTATOR_RETRAIN_DELAY must be a finite number, got nan"),
        ({"reconcile_every": math.inf}, "ANNOTATOR_RECONCILE_EVERY must be a finite number, got inf"),
        ({"retrain_delay": 10 * 86_400.0}, "ANNOTATOR_RETRAIN_DELAY must be from 0 to 604800, got 864000.0"),
        ({"batch_size": 10**9}, "ANNOTATOR_BATCH_SIZE must be from 1 to 10000, got 1000000000"),
        ({"strategy": "best"}, "ANNOTATOR_STRATEGY: unknown strategy 'best'; valid: " + ", ".join(STRATEGY_NAMES)),
        ({"seed": "3"}, "ANNOTATOR_SEED must be an integer, got '3'"),
        ({"overlap_share": True}, "ANNOTATOR_OVERLAP_SHARE must be a number, got True"),
        ({"session_cookie_secure": "yes"}, "ANNOTATOR_SESSION_COOKIE_SECURE must be true or false, got 'yes'"),
        (
            {"ls_url": "localhost:8080"},
            "ANNOTATOR_LS_URL must be an http:// or https:// URL such as 'http://127.0.0.1:8080', got 'localhost:8080'",
        ),
        (
            {"ls_url": "ftp://ann:s3cret@x"},
            "ANNOTATOR_LS_URL must be an http:// or https:// URL such as "
            "'http://127.0.0.1:8080', got 'ftp://ann:***@x'",
        ),
    ],
)
def test_settings_refuse_absurd_values_naming_the_key(tmp_path, changes, message):
    from annotator import InputError

    with pytest.raises(InputError) as err:
        Settings(home=tmp_path, **changes)
    assert str(err.value) == message


@pytest.mark.parametrize("raw, expected", [("true", True), ("1", True), ("on", True), ("no", False), ("", False)])
def test_boolean_settings_from_the_environment(tmp_path, raw, expected):
    settings = Settings.from_env({"ANNOTATOR_SESSION_COOKIE_SECURE": raw}, home=tmp_path)
    assert settings.session_cookie_secure is expected
