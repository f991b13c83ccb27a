# The `annotator simulate` command, to paste into annotator/cli.py (after `evaluate`), then delete
# this file. It relies on cli.py's globals (click, main, json_option, pass_context, handle_errors,
# emit, Context, sys) and imports nothing itself, so it is not importable on its own.
# tests/unit/test_simulate.py runs it (exec'd into cli's namespace) until cli.py has the command.


def _check_strategies(ctx, param, values):
    """Unknown strategy names are usage errors (exit 2) listing the valid names."""
    from .errors import InputError
    from .strategies import get_strategy

    for value in values:
        try:
            get_strategy(value)
        except InputError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return values


@main.command("simulate")
@click.option("--labeled", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Labeled file the simulated annotator answers from (the pool).")
@click.option("--test", "test_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Labeled file to measure on; never trained on.")
@click.option("--strategy", "strategies", multiple=True, default=("random", "default"), show_default=True,
              callback=_check_strategies,
              help="Query strategy; repeat to compare several. 'default' is the measured best.")
@click.option("--seed-size", type=click.IntRange(1), default=50, show_default=True,
              help="Labels before the first model (the cold-start batch).")
@click.option("--batch-size", type=click.IntRange(1), default=50, show_default=True, help="Labels per round.")
@click.option("--budget", type=click.IntRange(1), default=2000, show_default=True,
              help="Stop at this many labeled clauses.")
@click.option("--seeds", type=click.IntRange(1), default=5, show_default=True,
              help="Runs per strategy; curves are their mean.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the learning curves to this PNG file.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Also write the JSON result here.")
@json_option
@pass_context
@handle_errors
def simulate_cmd(obj: Context, labeled, test_file, strategies, seed_size, batch_size, budget, seeds, plot,
                 out_file, as_json) -> None:
    """Replay active learning on a labeled file to compare query strategies.

    Prints macro-F1 at several label counts and the labels each strategy needs to reach 95% of the
    full-data macro-F1; --json prints one object with `curves` and `full_data`.

    Example: annotator simulate --labeled pool.tsv --test test.tsv --strategy random --strategy default --json
    """
    from tqdm import tqdm

    from .simulate import plot_curves, simulate_files, summary_table

    rounds = max(1, -(-(budget - seed_size) // batch_size))
    with tqdm(total=len(strategies) * seeds * rounds, file=sys.stderr, unit="round",
              disable=not sys.stderr.isatty()) as bar:
        def progress(strategy: str, seed: int, n_labeled: int) -> None:
            bar.set_description(f"{strategy} seed {seed}")
            bar.update(1)

        result = simulate_files(labeled, test_file, obj.settings.labels, list(strategies),
                                seed_size=seed_size, batch_size=batch_size, budget=budget, seeds=seeds,
                                random_state=obj.settings.seed, cache_dir=obj.settings.cache_dir,
                                progress=progress)
    if plot:
        result["plot"] = str(plot_curves(result, plot))
    if out_file:
        Path(out_file).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    emit(result, as_json, summary_table(result) + (f"\nplot: {plot}" if plot else ""))
