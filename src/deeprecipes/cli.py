"""The ``deeprecipes`` command: a thin layer over :mod:`deeprecipes.runs.api` with the same defaults.

    deeprecipes list [PATTERN]
    deeprecipes show NAME
    deeprecipes run NAME [--set key=value]... [--epochs N] [--steps N] [--seed S] [--device D] [--out DIR]
    deeprecipes eval RUN_DIR [--best] [--split S]... [--scores]
    deeprecipes resume RUN_DIR
    deeprecipes activations [--out FILE]
    deeprecipes tune NAME [--grid key=v1,v2]... [--space key=LO:HI[:log]]... [--trials N] [--storage URL --study S]
    deeprecipes sample RUN_DIR [--prime TEXT] [--temperature T] [--length N] [--seed S] [--best]
    deeprecipes serve RUN_DIR|NAME=RUN_DIR|NAME@VERSION=RUN_DIR... [--host H] [--port P] [--max-batch N]
                      [--max-delay-ms MS] [--no-batching] [--api-key KEY] (TensorFlow Serving's REST API)
    deeprecipes export RUN_DIR --format onnx|torchscript|executorch [--out FILE] [--best]
    deeprecipes quantize RUN_DIR [--out DIR] [--best]
    deeprecipes profile RUN_DIR [--batch 1] [--runs 1000] [--best]
    deeprecipes envs [PATTERN]
    deeprecipes play RUN_DIR [--episodes N] [--gif FILE] [--seed S]

Errors a user can cause print one line, ``error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import DeepRecipesError, Interrupted


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deeprecipes", description="Classic deep-learning recipes on PyTorch.")
    p.add_argument("--version", action="version", version=f"deeprecipes {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final result")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_listing(sub)
    _add_run(sub)
    _add_saved_run(sub)
    _add_tune(sub)
    _add_serve(sub)
    _add_deploy(sub)
    _add_rl(sub)
    return p


def _add_rl(sub: Any) -> None:
    """Reinforcement learning: the environments that can be made, and a saved agent evaluated."""
    s = sub.add_parser("envs", help="list the Gymnasium environments that can be made (optionally matching PATTERN)")
    s.add_argument("pattern", nargs="?", default="*")
    s = sub.add_parser("play", help="evaluate a saved agent over N episodes (mean and std of the return)")
    s.add_argument("run_dir")
    s.add_argument("--episodes", type=int, default=10)
    s.add_argument("--gif", default=None, help="also save the first episode as an animated GIF here")
    s.add_argument("--seed", type=int, default=None, help="seed of the evaluation episodes (default: the run's)")


def _cmd_rl(args: argparse.Namespace) -> None:
    if args.command == "envs":
        from .rl.envs import matching_envs

        print("\n".join(matching_envs(args.pattern)))
    else:
        from .runs.environment import play

        print(json.dumps(play(args.run_dir, episodes=args.episodes, gif=args.gif, seed=args.seed), indent=2))


def _add_overrides(s: argparse.ArgumentParser, help: str) -> None:
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _add_listing(sub: Any) -> None:
    s = sub.add_parser("list", help="list recipes (optionally matching a glob pattern)")
    s.add_argument("pattern", nargs="?", default="*")
    s.add_argument("--models", action="store_true", help="list registered models instead")
    s.add_argument("--datasets", action="store_true", help="list registered datasets instead")

    s = sub.add_parser("show", help="print a recipe's TOML")
    s.add_argument("name")

    s = sub.add_parser("activations", help="draw the activation functions and their derivatives (one PNG)")
    s.add_argument("--out", default="activations.png", help="the PNG to write (default activations.png)")
    s.add_argument("--range", nargs=2, type=float, default=(-5.0, 5.0), metavar=("X_MIN", "X_MAX"))


def _add_run(sub: Any) -> None:
    s = sub.add_parser("run", help="run a recipe by name or TOML path")
    s.add_argument("name")
    _add_overrides(s, "override a recipe key, e.g. --set optimizer.lr=0.01 (repeatable)")
    s.add_argument("--epochs", type=int)
    s.add_argument("--steps", type=int, help="stop after this many optimizer steps")
    s.add_argument("--seed", type=int)
    s.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, mps")
    s.add_argument(
        "--nproc", type=int, default=0, help="train data-parallel on N local processes (starts torchrun; see README)"
    )
    s.add_argument("--threads", type=int, help="CPU threads for torch (default: the cores this process may use)")
    s.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="train.precision and pretrain.precision: auto = bf16 where the device runs it natively, else fp32",
    )
    s.add_argument("--out", help="run directory (default runs/<recipe>/<time>-s<seed>)")
    s.add_argument("--data-dir", help="look for data files here first (default $DEEPRECIPES_DATA)")
    s.add_argument("--smoke", action="store_true", help="a seconds-long check run (20 steps)")
    s.add_argument("--check", action="store_true", help="only check the recipe and overrides, print the config")


def _add_saved_run(sub: Any) -> None:
    s = sub.add_parser("eval", help="evaluate a saved run on its full evaluation splits")
    s.add_argument("run_dir")
    s.add_argument("--best", action="store_true", help="use the best checkpoint instead of the latest")
    s.add_argument("--split", action="append", default=[], help="split to evaluate (repeatable; default: the run's)")
    s.add_argument("--scores", action="store_true", help="also the end-of-run scores (FID, test_nll, baselines, ...)")
    s.add_argument(
        "--live", action="store_true", help="a run that averages its weights (train.average_tail): the live weights"
    )
    s.add_argument("--data-dir")

    s = sub.add_parser("figures", help="draw a saved run's pictures (reconstructions, filters, curves, 2-D codes)")
    s.add_argument("run_dir")
    s.add_argument("--best", action="store_true", help="use the best checkpoint instead of the latest")
    s.add_argument("--out", help="where to write the PNGs (default RUN_DIR/figures)")
    s.add_argument("--data-dir")

    s = sub.add_parser("resume", help="continue a run that was stopped or killed")
    s.add_argument("run_dir")
    s.add_argument("--data-dir")
    s.add_argument("--nproc", type=int, default=0, help="continue data-parallel on N local processes (torchrun)")
    s.add_argument(
        "--epochs", type=int, help="train on to this many epochs in all: more than the run was set for, finished or not"
    )

    s = sub.add_parser(
        "sample", help="generate text (a language model) or a grid of images (a VAE, a GAN) from a saved run"
    )
    s.add_argument("run_dir")
    s.add_argument("--prime", default="", help="text the model reads before generating (default: none)")
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; 0 = most likely token")
    s.add_argument("--length", type=int, default=500, help="tokens (characters or words) to generate")
    s.add_argument("--n", type=int, default=64, help="images to draw (image models)")
    s.add_argument("--out", default=None, help="the image grid's file (default RUN_DIR/figures/samples-s<seed>.png)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    s.add_argument("--best", action="store_true", help="use the best checkpoint instead of the latest")
    s.add_argument(
        "--interpolate",
        action="store_true",
        help="image models: each row of the grid walks a straight line between two random latent points "
        "(default file RUN_DIR/figures/interpolations-s<seed>.png)",
    )


def _add_tune(sub: Any) -> None:
    s = sub.add_parser("tune", help="search hyperparameters with Optuna: one run per trial, ranked")
    s.add_argument("name")
    s.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="categorical choices, e.g. --grid optimizer.lr=0.1,0.01 (repeatable)",
    )
    s.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="KEY=LO:HI[:log]",
        help="a float range, or an int range when both ends are integers; ':log' for a log scale, e.g. "
        "--space optimizer.lr=1e-4:1e-1:log (repeatable)",
    )
    s.add_argument(
        "--trials", type=int, metavar="N", help="trials to run in this process (default for a grid: the rest of it)"
    )
    s.add_argument(
        "--sampler",
        choices=("auto", "grid", "tpe", "random"),
        default="auto",
        help="auto (default): grid for --grid keys only, else TPE",
    )
    s.add_argument("--random", type=int, metavar="N", help="same as --trials N --sampler random")
    s.add_argument(
        "--pruner", choices=("median", "none"), default="median", help="prune trials on the validation metric"
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the sampler (default 0)")
    s.add_argument("--metric", help="metric that ranks the trials (default: the recipe's target)")
    s.add_argument("--mode", choices=("min", "max"), help="whether lower or higher --metric is better")
    s.add_argument("--storage", metavar="URL", help="Optuna database URL shared by processes (default OUT/study.db)")
    s.add_argument("--study", metavar="NAME", help="study name in the storage (default: the recipe's name)")
    s.add_argument("--out", help="search directory (default runs/tune/<recipe>); re-run to add trials to it")
    _add_overrides(s, "fixed override for every trial (repeatable)")
    s.add_argument("--epochs", type=int)
    s.add_argument("--steps", type=int, help="stop each trial after this many optimizer steps")
    s.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, mps")
    s.add_argument("--threads", type=int, help="CPU threads for torch")
    s.add_argument("--data-dir")


def _add_serve(sub: Any) -> None:
    s = sub.add_parser("serve", help="serve run directories over HTTP with TensorFlow Serving's REST API")
    s.add_argument("models", nargs="+", metavar="RUN_DIR", help="RUN_DIR, NAME=RUN_DIR or NAME@VERSION=RUN_DIR")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8501, help="port (default 8501, TF Serving's REST port; 0: any free)")
    s.add_argument("--max-batch", type=int, default=32, help="most instances run together (default 32)")
    s.add_argument("--max-delay-ms", type=float, default=2.0, help="how long a batch waits to fill (default 2)")
    s.add_argument("--no-batching", action="store_true", help="run every request alone")
    s.add_argument("--max-instances", type=int, default=1024, help="most instances in one request (default 1024)")
    s.add_argument("--max-body-mb", type=float, default=16.0, help="largest request body in MiB (default 16)")
    s.add_argument("--api-key", help="require this key (default $DEEPRECIPES_API_KEY; none: no auth)")
    s.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    s.add_argument("--latest", action="store_true", help="serve the latest checkpoint instead of the best")


def _cmd_serve(args: argparse.Namespace) -> None:
    from .serving import ServeOptions, serve

    options = ServeOptions(
        max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms,
        batching=not args.no_batching,
        max_instances=args.max_instances,
        max_body_mb=args.max_body_mb,
        api_key=args.api_key,
        which="latest" if args.latest else "best",
    )
    serve(args.models, host=args.host, port=args.port, threads=args.threads, options=options)


def _add_deploy(sub: Any) -> None:
    """export, quantize and profile: deployment of a saved run (deeprecipes.deploy)."""
    s = sub.add_parser(
        "export", help="export a saved run's model (ONNX, TorchScript or ExecuTorch), checked against PyTorch"
    )
    s.add_argument("run_dir")
    s.add_argument(
        "--format",
        required=True,
        choices=("onnx", "torchscript", "executorch"),
        help="onnx (dynamo exporter, dynamic batch), torchscript (torch.jit.trace), executorch (.pte, XNNPACK)",
    )
    s.add_argument("--out", help="the model file (default RUN_DIR/deploy/model.onnx|.pt|.pte); FILE.json goes beside")
    s.add_argument("--samples", type=int, default=256, help="test inputs the export is checked on (default 256)")

    s = sub.add_parser("quantize", help="post-training int8 (onnxruntime): size, accuracy and latency before/after")
    s.add_argument("run_dir")
    s.add_argument("--out", help="folder of model.onnx and model.int8.onnx (default RUN_DIR/deploy)")
    s.add_argument("--batch", type=int, default=1, help="batch size of the latency comparison (default 1)")
    s.add_argument("--runs", type=int, default=200, help="timed calls per runtime (default 200)")
    s.add_argument("--calibration", type=int, default=500, help="inputs calibrating activations (static; 500)")
    s.add_argument("--eval-subset", type=int, default=0, help="score on the first N test inputs (default 0: all)")

    s = sub.add_parser("profile", help="latency, per-operator times and FLOPs: PyTorch, ONNX Runtime, int8")
    s.add_argument("run_dir")
    s.add_argument("--batch", type=int, default=1, help="test inputs per call (default 1)")
    s.add_argument("--runs", type=int, default=1000, help="timed calls per runtime after warm-up (default 1000)")
    s.add_argument("--top", type=int, default=15, help="operators shown per runtime (default 15)")
    for name in ("export", "quantize", "profile"):
        s = sub.choices[name]
        s.add_argument("--best", action="store_true", help="use the best checkpoint instead of the latest")
        s.add_argument("--data-dir", help="where the run's data (test inputs) are looked for first")


def _cmd_deploy(args: argparse.Namespace) -> None:
    from . import deploy

    which = "best" if args.best else "latest"
    if args.command == "export":
        result = deploy.export_run(
            args.run_dir, format=args.format, out=args.out, which=which, data_dir=args.data_dir, samples=args.samples
        )
        print(result.report())
    elif args.command == "quantize":
        result = deploy.quantize_run(
            args.run_dir,
            out=args.out,
            which=which,
            data_dir=args.data_dir,
            batch=args.batch,
            runs=args.runs,
            calibration=args.calibration,
            eval_subset=args.eval_subset,
        )
        print(result.report())
    else:
        result = deploy.profile_run(args.run_dir, batch=args.batch, runs=args.runs, which=which, data_dir=args.data_dir)
        print(result.report(top=args.top))


def _cmd_tune(args: argparse.Namespace) -> None:
    from .tuning import format_table, parse_grid_option, parse_space_option, tune

    grid: dict[str, object] = {}
    space: dict[str, object] = {}
    for option, items, parse, into in (
        ("--grid", args.grid, parse_grid_option, grid),
        ("--space", args.space, parse_space_option, space),
    ):
        for item in items:
            key, values = parse(item)
            if key in grid or key in space:
                raise DeepRecipesError(f"{option} '{key}': the key is given twice; give it once, with all its values")
            into[key] = values
    try:
        result = tune(
            args.name,
            grid,
            space=space,
            trials=args.trials,
            sampler=args.sampler,
            random=args.random,
            pruner=args.pruner,
            seed=args.seed,
            metric=args.metric,
            mode=args.mode,
            out=args.out,
            storage=args.storage,
            study=args.study,
            overrides=args.overrides,
            epochs=args.epochs,
            steps=args.steps,
            threads=args.threads,
            device=args.device,
            data_dir=args.data_dir,
            progress=None if not args.quiet else False,
        )
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue the search", file=sys.stderr)
        raise SystemExit(130) from None
    storage = result.storage_shown
    print(f"search directory: {result.out}  (results.md, results.csv)")
    print(f"study '{result.study.study_name}' in {storage}  (optuna-dashboard {storage})")
    print(format_table(result), end="")
    best = result.best
    if best:
        shown = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
        print(f"best: {best['trial']} ({shown}) {result.metric} {best['value']:.6g}: {best['run_dir']}")
    else:
        print(f"no trial produced {result.metric}")


def _cmd_list(args: argparse.Namespace) -> None:
    from .registry import list_datasets, list_models, list_recipes

    if args.models:
        print("\n".join(list_models(args.pattern)))
        return
    if args.datasets:
        print("\n".join(list_datasets(args.pattern)))
        return
    from .recipes import recipe_summary

    rows = [recipe_summary(n) for n in list_recipes(args.pattern)]
    if not rows:
        raise DeepRecipesError(f"no recipe matches '{args.pattern}'")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        target = f"{r['metric']} {r['published']}" if r["published"] is not None else "-"
        print(f"{r['name']:<{width}}  {target:<28}  {r['description']}")


def _print_result(result: object) -> None:
    summary = result.summary  # type: ignore[attr-defined]
    if not summary:  # a data-parallel rank other than 0: rank 0 prints the run
        return
    tg = summary["target"]
    print(f"run directory: {result.run_dir}")  # type: ignore[attr-defined]
    for k, v in summary["metrics"].items():
        print(f"  {k:<22} {_shown(v)}")
    if tg["metric"] and tg["published"] is not None:
        verdict = {True: "reached", False: "not reached", None: "not measured"}[tg["met"]]
        print(f"  target {tg['metric']} {tg['published']} ({tg['source']}): {verdict}")
    print(f"  wall time {summary['wall_time_s']:.1f}s on {summary['device']['device']}")


def _shown(value: object) -> str:
    """A final metric as printed: NaN and infinite values are null in summary.json (strict JSON)."""
    if value is None:
        return "not finite"
    return format(value, ".6g") if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _dispatch(args: argparse.Namespace) -> None:
    if args.command == "list":
        _cmd_list(args)
    elif args.command == "show":
        from .recipes import recipe_text

        print(recipe_text(args.name), end="")
    elif args.command == "run":
        from .runs.api import run

        result = run(
            args.name,
            epochs=args.epochs,
            steps=args.steps,
            seed=args.seed,
            device=args.device,
            threads=args.threads,
            precision=args.precision,
            out=args.out,
            data_dir=args.data_dir,
            overrides=args.overrides,
            smoke=args.smoke,
            check=args.check,
            progress=None if not args.quiet else False,
        )
        if args.check:
            print(result.to_json())  # type: ignore[union-attr]
            print("recipe OK", file=sys.stderr)
        else:
            _print_result(result)
    elif args.command == "resume":
        from .runs.api import resume

        progress = None if not args.quiet else False
        _print_result(resume(args.run_dir, epochs=args.epochs, data_dir=args.data_dir, progress=progress))
    elif args.command == "figures":
        from .runs.api import figures

        for path in figures(
            args.run_dir, which="best" if args.best else "latest", out=args.out, data_dir=args.data_dir
        ):
            print(path)
    elif args.command == "activations":
        from .viz.activations import save_activations

        print(save_activations(args.out, x_min=args.range[0], x_max=args.range[1]))
    elif args.command == "tune":
        _cmd_tune(args)
    elif args.command in ("export", "quantize", "profile"):
        _cmd_deploy(args)
    elif args.command == "sample":
        from .runs.api import sample

        text = sample(
            args.run_dir,
            prime=args.prime,
            temperature=args.temperature,
            length=args.length,
            seed=args.seed,
            which="best" if args.best else "latest",
            n=args.n,
            out=args.out,
            interpolate=args.interpolate,
        )
        print(text)
    elif args.command == "serve":
        _cmd_serve(args)
    elif args.command in ("envs", "play"):
        _cmd_rl(args)
    elif args.command == "eval":
        _cmd_eval(args)


def _cmd_eval(args: argparse.Namespace) -> None:
    from .runs.api import evaluate

    metrics = evaluate(
        args.run_dir,
        which="best" if args.best else "latest",
        data_dir=args.data_dir,
        splits=args.split,
        scores=args.scores,
        average=not args.live,
    )
    print(json.dumps(metrics.record(), indent=2))


def _without_nproc(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0") or 0)  # under torchrun only rank 0 logs and prints
    quiet = args.quiet or rank > 0
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    if getattr(args, "nproc", 0) > 1:
        from .runs.launch import launch

        try:
            return launch(_without_nproc(argv), args.nproc)
        except DeepRecipesError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    where_rank = f" (rank {rank})" if rank else ""
    try:
        _dispatch(args)
    except DeepRecipesError as e:
        print(f"error{where_rank}: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # unwritable or vanished paths
        where = f"{e.filename}: " if e.filename else ""
        print(f"error{where_rank}: {where}{_one_line(e.strerror or e)}", file=sys.stderr)
        return 2
    except Interrupted as e:  # a run or resume: the message says how to continue it
        print(e, file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line(message: object) -> str:
    """A message on one line, whatever a library put into it."""
    text = str(message)
    return " ".join(text.split()) if "\n" in text or "\r" in text else text
