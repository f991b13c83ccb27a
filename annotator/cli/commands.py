"""The ``annotator`` command line: one click group, each command a thin wrapper over one library call.

``--json`` prints exactly one JSON document on stdout; human output, progress bars and logs go to
stderr. Exit codes: 0 success, 1 an AnnotatorError (its message is printed), 2 usage errors.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

# Only light modules at the top: `annotator --help` must start at once. Commands import the heavy
# ones (scikit-learn, pandas, jieba, Label Studio's SDK) inside their bodies.
from .. import __version__
from ..errors import AnnotatorError
from ..redaction import install_log_redaction, redact, settings_secrets
from ..settings import Settings
from ..storage.store import Store

if TYPE_CHECKING:
    from ..dataset.export import ExportReport

log = logging.getLogger("annotator")


class Context:
    """What every command needs: the settings, and a store opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.store_url)
        return self._store

    def registry(self, model_dir: str | None = None):
        """The model registry: the project's own, or a self-contained one in ``model_dir``."""
        from ..storage.registry import ModelRegistry

        if model_dir is None or Path(model_dir).resolve() == self.settings.model_dir.resolve():
            return ModelRegistry(self.settings.model_dir, self.store)
        return ModelRegistry(model_dir, Store(Path(model_dir) / "registry.db"))

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def handle_errors(fn):
    """Turn AnnotatorError into a clean CLI error (exit 1) instead of a traceback, redacted.

    An OSError that reaches a command (an unwritable output, a full disk) is reported the same way:
    the README promises exit 1 with a message, never a traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        secrets = settings_secrets(args[0].settings) if args and isinstance(args[0], Context) else ()
        try:
            return fn(*args, **kwargs)
        except AnnotatorError as exc:
            raise click.ClickException(redact(str(exc), secrets)) from exc
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise click.ClickException(redact(f"{exc.strerror or exc}{where}", secrets)) from exc

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
model_dir_option = click.option(
    "--model-dir", type=click.Path(file_okay=False), help="Model directory (default: <home>/models)."
)


def emit(obj, as_json: bool, human: str | None = None) -> None:
    """With ``--json``, ``obj`` as one JSON document on stdout; else the human summary on stderr."""
    if as_json:
        click.echo(json.dumps(obj, ensure_ascii=False, indent=None, default=str))
    else:
        click.echo(human if human is not None else json.dumps(obj, ensure_ascii=False, indent=2, default=str), err=True)


@click.group()
@click.version_option(__version__, "-V", "--version", prog_name="annotator")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="ANNOTATOR_HOME",
    help="Project data directory (default ./.annotator, or $ANNOTATOR_HOME).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True),
    help="TOML settings file (default <home>/config.toml if it exists).",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More log output on stderr (-vv for debug); default $LOG_LEVEL, else WARNING (INFO for serve and worker).",
)
@click.pass_context
def main(ctx: click.Context, home: str | None, config_file: str | None, verbose: int) -> None:
    """Active-learning annotation of Chinese policy clauses."""
    logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.WARNING - 10 * min(verbose, 2))
    try:
        settings = Settings.from_env(config_file=config_file, home=home)
    except AnnotatorError as exc:
        raise click.ClickException(redact(str(exc))) from exc
    if not verbose and settings.log_level:
        logging.getLogger().setLevel(settings.log_level)
    elif not verbose and ctx.invoked_subcommand in ("serve", "worker"):
        logging.getLogger().setLevel(logging.INFO)  # a server says what it does
    install_log_redaction(settings_secrets(settings))
    ctx.obj = Context(settings)
    ctx.call_on_close(ctx.obj.close)


pass_context = click.make_pass_decorator(Context)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--tasks-out", type=click.Path(dir_okay=False), help="Label Studio task file to write (default: <home>/tasks.json)."
)
@json_option
@pass_context
@handle_errors
def ingest(obj: Context, paths, tasks_out, as_json) -> None:
    """Segment policy documents into clauses and add them to the project.

    Example: annotator ingest tasks/sources/
    """
    from ..cycle.project import ingest_documents
    from ..text.ingest import check_tasks_out

    check_tasks_out(tasks_out or obj.settings.home / "tasks.json")  # before the documents are read
    report = ingest_documents(obj.store, paths, tasks_out=tasks_out or obj.settings.home / "tasks.json")
    lines = [f"{d.path}: {d.clauses} clauses ({d.new} new, {d.dropped} lines dropped)" for d in report.documents]
    lines += [f"error: {e}" for e in report.errors]
    lines.append(
        f"{report.new_clauses} new clauses; {report.total_clauses} in the project"
        + (f"; tasks written to {report.tasks_file}" if report.tasks_file else "")
    )
    if feedback := report.not_policy.n:
        openings = ", ".join(f"{o}… ({n})" for o, n in report.not_policy.openings[:5])
        lines.append(
            f"annotators marked {feedback} earlier line(s) 'not a policy measure'; most open with {openings}"
            " (lines like these are worth dropping at ingestion)"
        )
    emit(report.to_dict(), as_json, "\n".join(lines))
    if not report.documents:
        raise click.ClickException("no document could be ingested")


@main.command("import-labels")
@click.argument("file", type=click.Path())
@json_option
@pass_context
@handle_errors
def import_labels_cmd(obj: Context, file, as_json) -> None:
    """Import a labeled file (seed TSV ``label<TAB>text``, CSV or JSONL) as seed annotations.

    Example: annotator import-labels tasks/seed_labels.tsv
    """
    from ..cycle.project import import_labels

    report = import_labels(obj.store, file, obj.settings.labels)
    human = [
        f"{report.examples} labeled clauses from {report.n_lines} lines "
        f"({report.exact_duplicates} duplicate lines, {report.n_conflicts} near-duplicates "
        f"with conflicting labels, {report.n_problems} problem lines)",
        f"annotations: {dict(report.annotations)}",
    ]
    human += [f"  {p}" for p in report.problems[:10]]
    if report.n_problems > 10:
        human.append(f"  ... and {report.n_problems - 10} more (use --json)")
    emit(report.to_dict(), as_json, "\n".join(human))


@main.command()
@click.option("--labeled", type=click.Path(), help="Train on this labeled file instead of the project's labels.")
@model_dir_option
@click.option(
    "--holdout",
    type=click.FloatRange(0, 0.5),
    default=0.15,
    show_default=True,
    help="Share held out (near-duplicate aware) to measure the model; 0 to skip.",
)
@json_option
@pass_context
@handle_errors
def train(obj: Context, labeled, model_dir, holdout, as_json) -> None:
    """Train the classifier and save it as a new model version.

    Example: annotator train --labeled tasks/seed_labels.tsv
    """
    from ..text.seedset import read_labeled_file
    from ..model.training import train_model

    labels = obj.settings.labels
    registry = obj.registry(model_dir)
    if labeled:
        result = train_model(
            read_labeled_file(labeled, labels).examples, labels, holdout=holdout, seed=obj.settings.seed
        )
        version = registry.save(result.model, n_train=result.n_train, metrics=result.metrics)
        seconds = result.seconds
    else:
        from ..cycle.loop import train_project

        trained, _ = train_project(obj.settings, obj.store, registry, holdout=holdout)
        version = registry.load(trained.version.version)[0]  # with its held-out figures
        seconds = float(version.metrics.get("seconds", 0)) + float(version.metrics.get("evaluation_seconds", 0))
    m = version.metrics
    out = {
        "model_version": version.version,
        "path": version.path,
        "n_train": version.n_train,
        "seconds": round(seconds, 2),
        "metrics": m,
    }
    human = f"model version {version.version}: {version.n_train} examples, {seconds:.1f} s" + (
        f"; held-out macro-F1 {m['macro_f1']:.3f}, micro-F1 {m['micro_f1']:.3f} (n={m['n']})" if "macro_f1" in m else ""
    )
    emit(out, as_json, human)


@main.command()
@click.option("--labeled", type=click.Path(), required=True, help="Labeled file to evaluate on.")
@model_dir_option
@click.option("--version", "version", default="latest", show_default=True, help="Model version.")
@json_option
@pass_context
@handle_errors
def evaluate(obj: Context, labeled, model_dir, version, as_json) -> None:
    """Measure a model version on a labeled file.

    Example: annotator evaluate --labeled test.tsv --json
    """
    from ..text.seedset import read_labeled_file
    from ..model.training import evaluate_model

    info, model = obj.registry(model_dir).load(version)
    examples = read_labeled_file(labeled, tuple(model.labels_)).examples
    result = evaluate_model(model, examples)
    result["model_version"] = info.version
    human = (
        f"model version {info.version} on {result['n']} clauses: macro-F1 {result['macro_f1']:.3f}, "
        f"micro-F1 {result['micro_f1']:.3f}, samples-F1 {result['samples_f1']:.3f}, "
        f"subset accuracy {result['subset_accuracy']:.3f}"
    )
    emit(result, as_json, human)


@main.command()
@model_dir_option
@click.option("--version", "version", default="latest", show_default=True, help="Model version.")
@click.option(
    "--top",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Also show this many most probable labels per text.",
)
@json_option
@pass_context
@handle_errors
def predict(obj: Context, model_dir, version, top, as_json) -> None:
    """Predict labels for texts read from stdin, one per line.

    Example: echo 对符合条件的企业给予贷款贴息支持。 | annotator predict
    """
    from ..text.normalize import normalize_text

    info, model = obj.registry(model_dir).load(version)
    texts = [normalize_text(line) for line in sys.stdin.read().splitlines() if line.strip()]
    if not texts:
        raise click.UsageError("no text on stdin; give one clause per line")
    proba = model.predict_proba(texts)
    chosen = model.predict(texts)
    rows: list[dict[str, Any]] = []
    for text, p, y in zip(texts, proba, chosen):
        order = p.argsort()[::-1]
        rows.append(
            {
                "text": text,
                "labels": [model.labels_[j] for j in order if y[j]],
                "probabilities": {model.labels_[j]: round(float(p[j]), 4) for j in order[:top]},
            }
        )
    if as_json:
        emit({"model_version": info.version, "predictions": rows}, True)
    else:
        for row in rows:
            probs = ", ".join(f"{k} {v:.2f}" for k, v in row["probabilities"].items())
            click.echo(f"{'|'.join(row['labels'])}\t{probs}\t{row['text'][:60]}")


@main.command()
@json_option
@pass_context
@handle_errors
def status(obj: Context, as_json) -> None:
    """Show what the project holds: clauses, labels, model versions, pushed tasks."""
    store = obj.store
    latest = store.latest_model_version()
    out = {
        "home": str(obj.settings.home),
        "clauses": store.count_clauses(),
        "labeled_clauses": len(store.labeled_clause_ids()),
        "annotations": {
            "seed": store.count_annotations(sources=["seed"]),
            "label_studio": store.count_annotations(sources=["label_studio"]),
        },
        "model_versions": len(store.model_versions()),
        "latest_model": None
        if latest is None
        else {"version": latest.version, "n_train": latest.n_train, "macro_f1": latest.metrics.get("macro_f1")},
        "pushed_pending": len(store.pending_pushed_tasks()),
        "not_policy": len({a.clause_id for a in store.annotations(not_policy=True)}),
    }
    emit(out, as_json)


def _check_strategies(ctx, param, values):
    """Unknown strategy names are usage errors (exit 2) listing the valid names."""
    from ..errors import InputError
    from ..query.strategies import get_strategy

    for value in values:
        try:
            get_strategy(value)
        except InputError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return values


@main.command("simulate")
@click.option(
    "--labeled",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Labeled file the simulated annotator answers from (the pool).",
)
@click.option(
    "--test",
    "test_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Labeled file to measure on; never trained on. Or use --folds.",
)
@click.option(
    "--strategy",
    "strategies",
    multiple=True,
    default=("random", "default"),
    show_default=True,
    callback=_check_strategies,
    help="Query strategy; repeat to compare several. 'default' is the measured best.",
)
@click.option(
    "--seed-size",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Labels before the first model (the cold-start batch).",
)
@click.option("--batch-size", type=click.IntRange(1), default=50, show_default=True, help="Labels per round.")
@click.option(
    "--budget", type=click.IntRange(1), default=2000, show_default=True, help="Stop at this many labeled clauses."
)
@click.option(
    "--seeds", type=click.IntRange(1), default=5, show_default=True, help="Runs per strategy; curves are their mean."
)
@click.option(
    "--folds",
    type=click.IntRange(2),
    help="Instead of --test: split --labeled into this many "
    "folds (near-duplicates kept together), each tested once; strategies compared with random "
    "in pairs by fold and seed.",
)
@click.option(
    "--fold",
    "fold_ids",
    type=click.IntRange(0),
    multiple=True,
    help="With --folds: test only on this fold (repeat; default all). Choose a strategy on "
    "some folds, report it on the others.",
)
@click.option(
    "--split-seed", type=click.IntRange(0), default=0, show_default=True, help="With --folds: seed of the fold split."
)
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the learning curves to this PNG file.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Also write the JSON result here.")
@json_option
@pass_context
@handle_errors
def simulate_cmd(
    obj: Context,
    labeled,
    test_file,
    strategies,
    seed_size,
    batch_size,
    budget,
    seeds,
    folds,
    fold_ids,
    split_seed,
    plot,
    out_file,
    as_json,
) -> None:
    """Replay active learning on a labeled file to compare query strategies.

    Prints macro-F1 at several label counts and the labels each strategy needs to reach 95% of the
    full-data macro-F1; --json prints one object with `curves` and `full_data`. With --folds it
    prints each strategy's gain over random per label count, area under the curve and labels to
    95% relative to random, with 95% intervals (JSON keys `paired`, `per_fold`, `stopping`).
    --batch-size 10 replays what the live loop serves (a retrain every 10 labels).

    Example: annotator simulate --labeled pool.tsv --test test.tsv --strategy random --strategy default --json

    Example: annotator simulate --labeled seeds.tsv --folds 5 --fold 2 --fold 3 --fold 4 --seeds 2
    """
    from tqdm import tqdm

    from ..query.simulate import fold_summary_table, plot_curves, simulate_files, simulate_folds_file, summary_table

    if (test_file is None) == (folds is None):
        raise click.UsageError("give either --test FILE or --folds K")
    if fold_ids and folds is None:
        raise click.UsageError("--fold needs --folds")
    if plot and folds:
        raise click.UsageError("--plot draws the curves of --test; the fold mode has one set per fold")
    from ..text.ingest import check_output_file

    for option, path in (("--plot", plot), ("--out", out_file)):  # before the run, not after it
        if path:
            check_output_file(path, option)
    runs = len(fold_ids or range(folds or 1)) * (len(strategies) + ("random" not in strategies and bool(folds)))
    rounds = max(1, -(-(budget - seed_size) // batch_size))
    with tqdm(total=runs * seeds * rounds, file=sys.stderr, unit="round", disable=not sys.stderr.isatty()) as bar:

        def progress(strategy: str, seed: int, n_labeled: int) -> None:
            bar.set_description(f"{strategy} seed {seed}")
            bar.update(1)

        common = dict(
            seed_size=seed_size,
            batch_size=batch_size,
            budget=budget,
            seeds=seeds,
            random_state=obj.settings.seed,
            cache_dir=obj.settings.cache_dir,
            progress=progress,
        )
        if folds:
            result = simulate_folds_file(
                labeled,
                obj.settings.labels,
                list(strategies),
                folds=folds,
                fold_ids=list(fold_ids) or None,
                split_seed=split_seed,
                **common,
            )
        else:
            result = simulate_files(labeled, test_file, obj.settings.labels, list(strategies), **common)
    if plot and not folds:
        result["plot"] = str(plot_curves(result, plot))
    if out_file:
        Path(out_file).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    text = fold_summary_table(result) if folds else summary_table(result) + (f"\nplot: {plot}" if plot else "")
    emit(result, as_json, text)


ls_options = [
    click.option("--url", envvar="LABEL_STUDIO_URL", help="Label Studio URL (or $LABEL_STUDIO_URL)."),
    # The key is read by Settings from $LABEL_STUDIO_API_KEY or the file $LABEL_STUDIO_API_KEY_FILE
    # (ls_api_key_file in config.toml); the flag still works but `ps` shows it to every local user.
    click.option(
        "--api-key",
        help="Deprecated: visible in `ps`. Set $LABEL_STUDIO_API_KEY or $LABEL_STUDIO_API_KEY_FILE instead.",
    ),
]


def with_ls_options(fn):
    for option in reversed(ls_options):
        fn = option(fn)
    return fn


def ls_settings(obj: Context, url: str | None, api_key: str | None) -> Settings:
    if api_key:
        click.echo(
            "warning: --api-key puts the Label Studio API key on the command line, where `ps` shows it "
            "to every user of this machine; set LABEL_STUDIO_API_KEY or LABEL_STUDIO_API_KEY_FILE "
            "instead",
            err=True,
        )
    return obj.settings.replace(ls_url=url or obj.settings.ls_url, ls_api_key=api_key or obj.settings.ls_api_key)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default $PORT, else 9090).")
@click.option("--threads", type=click.IntRange(1, 64), help="Threads per process (default $THREADS, else 8).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes (default $WORKERS, else 1); more than 1 runs gunicorn instead of waitress.",
)
@pass_context
@handle_errors
def serve(obj: Context, host, port, threads, workers) -> None:
    """Run the ML backend and dashboard under a production WSGI server (waitress; gunicorn with
    --workers > 1).

    Example: annotator --home .annotator serve --port 9090 --workers 4
    """
    import os

    from .services import backend_command

    from ..lifecycle import check_can_listen

    settings = obj.settings
    port, threads, workers = port or settings.port, threads or settings.threads, workers or settings.workers
    # Checked here, not in the server's traceback after the exec: the address, the home and its store.
    check_can_listen(host, port)
    obj.store.schema_version  # noqa: B018 -- opening the store migrates it, before the exec
    obj.close()
    command = backend_command(host, port, threads=threads, workers=workers)
    # The server process reads its settings from the environment: pass on the resolved home and
    # log level, so -v and ANNOTATOR_HOME/--home reach it.
    env = dict(
        os.environ,
        ANNOTATOR_HOME=str(settings.home.resolve()),
        ANNOTATOR_LOG_LEVEL=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
    )
    click.echo(
        f"backend on http://{host}:{port} (dashboard: /dashboard), project {env['ANNOTATOR_HOME']}, "
        f"{workers} worker process(es)",
        err=True,
    )
    os.execvpe(command[0], command, env)


@main.command()
@click.option("--burst", is_flag=True, help="Run the cycles already queued, then exit.")
@click.option("--name", help="Worker name shown by `rq info` (default: a random one).")
@click.option(
    "--no-fork",
    is_flag=True,
    help="Run cycles in this process instead of a fork per cycle (faster, no crash isolation).",
)
@pass_context
@handle_errors
def worker(obj: Context, burst, name, no_fork) -> None:
    """Run training cycles from the project's job queue on Redis (ANNOTATOR_REDIS_URL).

    Backends configured with the same Redis URL and home enqueue their cycles here; run one or more
    workers beside them, with the same environment (secrets such as LABEL_STUDIO_API_KEY are read
    here, never sent through Redis).

    Example: ANNOTATOR_REDIS_URL=redis://127.0.0.1:6379/0 annotator --home /srv/annotator worker
    """
    from ..cycle.jobqueue import queue_name, run_worker
    from ..settings import mask_password

    settings = obj.settings
    click.echo(
        f"worker for {settings.home.resolve()}: queue {queue_name(settings.home)!r} on "
        f"{mask_password(settings.redis_url) or '(no ANNOTATOR_REDIS_URL)'}"
        + ("" if settings.ls_api_key else "; LABEL_STUDIO_API_KEY not set: cycles cannot push batches")
        + (", until the queue is empty" if burst else ""),
        err=True,
    )
    run_worker(settings, burst=burst, name=name, fork=not no_fork)


@main.command()
@with_ls_options
@click.option("--project-title", help="Label Studio project title (default from settings).")
@click.option(
    "--backend-url", help="The backend's address as Label Studio should call it (default http://127.0.0.1:9090)."
)
@json_option
@pass_context
@handle_errors
def connect(obj: Context, url, api_key, project_title, backend_url, as_json) -> None:
    """Create or reuse the Label Studio project, connect this backend and push the first batch.

    Example: LABEL_STUDIO_API_KEY_FILE=~/.ls-token annotator connect --url http://127.0.0.1:8080
    """
    from ..cycle.connect import connect_project
    from ..labelstudio.client import LabelStudioClient

    settings = ls_settings(obj, url, api_key)
    with LabelStudioClient(settings.ls_url, settings.ls_api_key) as client:
        report = connect_project(settings, obj.store, client, backend_url=backend_url, title=project_title)
    push = report["push"] or {}
    emit(
        report,
        as_json,
        f"project {report['project_id']} ({'created' if report['created'] else 'reused'}) "
        f"at {report['url']}; pushed {push.get('imported', 0)} tasks, "
        f"{push.get('pending', 0)} waiting",
    )


@main.command()
@with_ls_options
@json_option
@pass_context
@handle_errors
def sync(obj: Context, url, api_key, as_json) -> None:
    """Repair a project whose store and Label Studio disagree (after an outage, a crash, lost
    webhooks): every annotation is read back, the queue's records are settled by the tasks' data,
    and the waiting tasks get the latest model's scores.

    Example: annotator sync
    """
    from ..labelstudio.client import LabelStudioClient
    from ..cycle.loop import PROJECT_KEY
    from ..cycle.ls_queue import repair_project

    project_id = obj.store.get_meta(PROJECT_KEY)
    if project_id is None:
        raise click.ClickException("this project is not connected to Label Studio; run `annotator connect` first")
    settings = ls_settings(obj, url, api_key)
    with LabelStudioClient(settings.ls_url, settings.ls_api_key) as client:
        report = repair_project(settings, obj.store, client, int(project_id))
    queue = report["queue"]
    emit(
        report,
        as_json,
        f"project {project_id}: {report['counts']}; queue: {queue['pending']} waiting, "
        f"{queue['imported']} added, {queue['returned']} returned to the pool"
        + "".join(f"\n  {p}" for p in report["problems"]),
    )


@main.command("label-config")
@pass_context
def label_config_cmd(obj: Context) -> None:
    """Print the Label Studio labeling config (for a project made in Label Studio's UI).

    Example: annotator label-config > config.xml
    """
    click.echo(obj.settings.labels_config().xml.rstrip())


@main.command()
@click.option("--ls-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=9090, show_default=True, help="Backend port.")
@click.option("--username", default="admin@example.com", show_default=True)
@click.option("--password", default="annotator-demo", show_default=True)
@click.option("--exit-after-setup", is_flag=True, help="Stop both servers once the first batch is pushed.")
@pass_context
@handle_errors
def demo(obj: Context, ls_port, port, username, password, exit_after_setup) -> None:
    """Start Label Studio and the backend, ingest the newsletters, train on the seed set, connect,
    and push the first uncertain batch. Ctrl-C stops both servers.

    Example: annotator demo
    """
    from .demo import run_demo

    run_demo(
        obj.settings,
        ls_port=ls_port,
        backend_port=port,
        username=username,
        password=password,
        stay=not exit_after_setup,
        echo=lambda line: click.echo(line, err=True),
    )


@main.command()
@json_option
@click.option(
    "--queue",
    "show_queue",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Also list this many clauses of the disagreement queue.",
)
@pass_context
@handle_errors
def agreement(obj: Context, as_json, show_queue) -> None:
    """Inter-annotator agreement over clauses labeled by two or more annotators.

    Example: annotator agreement --json
    """
    from ..dataset.reports import agreement_summary

    report = agreement_summary(obj.store, obj.settings.labels, queue_size=show_queue)
    if as_json:
        emit(report, True)
        return
    a = report["agreement"]
    s = a["set_level"]
    lines = [f"{a['n_items']} clauses with ≥2 annotators, {a['n_annotators']} annotators"]
    if a.get("warning"):
        lines.append(f"warning: {a['warning']}")
    lines.append(
        f"set-level: Krippendorff alpha (MASI) {_fmt(s['krippendorff_alpha_masi'])}, "
        f"exact match {_fmt(s['exact_match'])}, mean Jaccard {_fmt(s['mean_jaccard'])}"
    )
    for row in a["per_label"]:
        lines.append(
            f"  {row['label']}: kappa {_fmt(row['cohen_kappa'])}, alpha {_fmt(row['krippendorff_alpha'])}, "
            f"agreement {_fmt(row['agreement'])} (n={row['n_items']})"
        )
    for item in report["queue"]:
        lines.append(
            f"  ! {item['clause_id']} {item['reason']} score {item['score']:.2f}: "
            + "; ".join(f"{k}={'|'.join(v)}" for k, v in item["annotations"].items())
        )
    emit(report, False, "\n".join(lines))


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@main.command()
@click.argument("clause_id")
@click.argument("labels", nargs=-1, required=True)
@click.option("--resolver", required=True, help="Who decides (a lead's name or email).")
@click.option("--note", default="", help="Why.")
@pass_context
@handle_errors
def resolve(obj: Context, clause_id, labels, resolver, note) -> None:
    """Adjudicate a clause: store the final label set (annotators' answers stay as they are).

    Example: annotator resolve 3f2a9c0d1e2b4a5c 金融支持 财政支持 --resolver lead@example.com
    """
    from ..review.resolve import adjudicate

    chosen = adjudicate(obj.store, clause_id, labels, resolver=resolver, note=note, label_set=obj.settings.labels)
    click.echo(f"{clause_id}: {' | '.join(chosen)} (by {resolver.strip()})")


@main.group()
def annotators() -> None:
    """Manage annotator accounts in the Label Studio organization."""


@annotators.command("add")
@click.argument("emails", nargs=-1, required=True)
@with_ls_options
@json_option
@pass_context
@handle_errors
def annotators_add(obj: Context, emails, url, api_key, as_json) -> None:
    """Give each person an account in the Label Studio organization: able to log in, and every
    label they submit reaches the project. A new account's one-time password is printed once
    (never logged): hand it to the person, who logs in at Label Studio's URL.

    Example: annotator annotators add ann1@example.com ann2@example.com
    """
    from ..labelstudio.accounts import add_annotators
    from ..labelstudio.client import LabelStudioClient
    from ..cycle.sync import remember_users

    settings = ls_settings(obj, url, api_key)
    with LabelStudioClient(settings.ls_url, settings.ls_api_key) as client:
        reports = add_annotators(client, emails)
        remember_users(obj.store, client)
    lines = []
    for r in reports:
        if r.created:
            lines.append(f"{r.email}: account created (user {r.user_id}); one-time password: {r.password}")
        else:
            lines.append(
                f"{r.email}: already a member (user {r.user_id})"
                + ("; activated, so their labels now reach the project" if r.activated else "")
            )
    lines.append(f"log in at {settings.ls_url}/user/login/ (passwords are shown only here, once)")
    emit(
        {"annotators": [r.to_dict() for r in reports], "login_url": f"{settings.ls_url}/user/login/"},
        as_json,
        "\n".join(lines),
    )


@main.command()
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet", "hf"]), default="jsonl", show_default=True
)
@click.option("--out", required=True, help="Output folder inside the exports root, e.g. exports/v1.")
@click.option("--root", default="exports", show_default=True, help="Folder exports must stay inside.")
@click.option(
    "--policy",
    type=click.Choice(["majority", "unanimous", "union"]),
    default="majority",
    show_default=True,
    help="How annotators' label sets combine when no lead adjudicated.",
)
@click.option("--split", "ratios", default="0.8,0.1,0.1", show_default=True, help="train,dev,test shares.")
@click.option("--no-noise-check", is_flag=True, help="Skip the cleanlab label-noise check.")
@click.option("--overwrite", is_flag=True, help="Replace an existing export folder.")
@json_option
@pass_context
@handle_errors
def export(obj: Context, fmt, out, root, policy, ratios, no_noise_check, overwrite, as_json) -> None:
    """Export a cleaned, deduplicated, stratified multi-label dataset.

    Example: annotator export --format jsonl --out exports/policy-v1
    """
    from ..dataset.reports import export_project

    try:
        splits = tuple(float(x) for x in ratios.split(","))
    except ValueError:
        raise click.BadParameter(f"expected three numbers like 0.8,0.1,0.1, got {ratios!r}", param_hint="--split")
    report = export_project(
        obj.store,
        obj.settings,
        out,
        fmt=fmt,
        root=root,
        policy=policy,
        splits=splits,
        noise_check=not no_noise_check,
        overwrite=overwrite,
    )
    emit(report.to_dict(), as_json, _export_summary(report))


def _export_summary(report: ExportReport) -> str:
    lines = [f"wrote {report.out} ({report.fmt}): {report.n_examples} examples, {report.n_review} for review"]
    for name, n in report.split_sizes.items():
        lines.append(f"  {name}: {n} clauses")
    for step, n in report.steps.items():
        lines.append(f"  removed/flagged by {step}: {n}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    main()
