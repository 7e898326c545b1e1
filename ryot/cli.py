"""`ryot stage3a ...`: train the Stage 3a arms, judge them, print the seed plan's tables.
`ryot report RUN_DIR`: render a run folder's HTML report again, without training.
`ryot prepare-text [--out DIR]`: write real-text token files (ryot.bench.prepare_text).

Exit codes: 0 GO (or a single arm trained fine), 1 INVESTIGATE, 2 usage or config error
(found before anything is written: a bad flag or config, a --stack that cannot build a stack, a
model or token files that cannot be trained (ryot.optim.workload_check), an optimization the
config turns on that cannot apply to the model, a model that cannot fit, a checkpoint of
another arm or config, an --out in use by another run), 3 DEBUG (a crash, a divergence, an
optimization with no effect, a full disk), 130 interrupted (Ctrl-C or SIGTERM: workers are
stopped first).

A run is written into a staging folder and moved into --out whole: see ryot.experiment.run_folder.
With --nproc-per-node or --nnodes, each run is a torchrun (DDP) job: see ryot.experiment.launch.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import sys
import tempfile
import traceback
from dataclasses import replace
from pathlib import Path

from ryot.bench import prepare_text
from ryot.bench.sizing import ModelTooLarge
from ryot.config import Config, ConfigError, config_from_dict, load_config
from ryot.console import FAIL, WARN, Console, to_encoding
from ryot.errors import EXIT_CRASH, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from ryot.experiment.launch import Launch, LaunchError
from ryot.experiment.run_folder import RunFolder
from ryot.experiment.runners import SubprocessRunner
from ryot.experiment.session import PreflightError, preflight, publish, set_aside
from ryot.experiment.stage3a import follow_stage3a, run_stage3a
from ryot.optim import registry
from ryot.optim.stack_spec import DEFAULT_STACK, StackSpecError, check_stack_factory
from ryot.optim.workload_check import WorkloadError, check_workload
from ryot.osutil import interrupt_on_sigterm, os_error_line
from ryot.train.checkpoint import CheckpointError, load_checkpoint, resume_problem
from ryot.train.trainer import resolve_device


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump, exit 2
        raise UsageError(message)


def version() -> str:
    """The installed distribution's version ("unknown" when run from a bare source tree)."""
    try:
        return importlib.metadata.version("ryot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ryot", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                        help="print ryot's version and exit")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    stage = sub.add_parser("stage3a", help="train and compare the Stage 3a arms")
    stage.add_argument("--config", type=Path, default=Path("configs/stage3a.yaml"),
                       metavar="PATH", help="the experiment's config YAML")  # fmt: skip
    stage.add_argument(
        "--out", type=Path, default=Path("reports/stage3a"), metavar="DIR",
        help="run folder to write: comparison.json, report.html, monitor.log, checkpoints/, "
        "runs/ (an earlier complete run there is replaced only by a complete one)",
    )  # fmt: skip
    stage.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    stage.add_argument(
        "--arms",
        default="baseline,optimized",
        help=f"comma-separated arms: {', '.join(registry.arms())} (default: baseline,optimized)",
    )
    stage.add_argument(
        "--repeats", type=int, metavar="N",
        help="interleaved pairs (default: the config's measurement.repeats)",
    )  # fmt: skip
    stage.add_argument(
        "--resume", type=Path, metavar="PATH",
        help="continue one arm from its checkpoint (default: a fresh run)",
    )  # fmt: skip
    stage.add_argument(
        "--stack",
        default=DEFAULT_STACK,
        metavar="MODULE:FUNCTION",
        help="build each arm's optimization stack with this function (to validate your own)",
    )
    add_launch_arguments(stage)
    report = sub.add_parser("report", help="render DIR/report.html again from DIR/comparison.json")
    report.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR",
        help="a run folder: its comparison.json is read, its report.html written",
    )  # fmt: skip
    report.add_argument(
        "--history", type=Path, action="append", default=[], metavar="RUN_DIR",
        help="an earlier run folder for the history trend (repeatable; siblings are found too)",
    )  # fmt: skip
    serve = sub.add_parser("serve", help="serve a GO run's checkpoint over HTTP (Stage 3b)")
    from ryot.serve.command import add_arguments  # the server's own dependencies load lazily

    add_arguments(serve)
    prepare = sub.add_parser(
        "prepare-text",
        help="write real-text token files (the Python standard library's bytes) for "
        "data.source: tokens",
    )
    prepare_text.add_arguments(prepare)
    for each in (parser, stage, report, serve, prepare):
        show_defaults(each)
    return parser


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's help ends with its default, where it has one its help does not name
    already (ArgumentDefaultsHelpFormatter would say it twice where the help says it in words)."""
    for action in parser._actions:  # argparse has no public walk over a parser's options
        default = action.default
        if (not action.option_strings or action.help in (None, argparse.SUPPRESS)
                or default in (None, False, [], argparse.SUPPRESS)
                or "default" in action.help):  # fmt: skip
            continue
        action.help += " (default: %(default)s)"


def add_launch_arguments(stage: argparse.ArgumentParser) -> None:
    """Each run as a torchrun (DDP) job (ryot.experiment.launch)."""
    group = stage.add_argument_group("torchrun (DDP): each run on several processes or machines")
    group.add_argument(
        "--nproc-per-node",
        type=int,
        default=1,
        metavar="N",
        help="ranks per machine: one per GPU on CUDA; on CPU the cores are split "
        "between them (default: 1, a single process)",
    )
    group.add_argument(
        "--nnodes",
        type=int,
        default=1,
        metavar="M",
        help="machines; each runs this same command with its --node-rank",
    )
    group.add_argument(
        "--node-rank",
        type=int,
        default=0,
        metavar="R",
        help="this machine's rank; node 0 judges and writes --out (default: 0)",
    )
    group.add_argument(
        "--rdzv-endpoint",
        metavar="HOST:PORT",
        help="node 0's address and a free port, for --nnodes > 1",
    )
    group.add_argument("--rdzv-timeout", type=float, default=Launch.rdzv_timeout_s, metavar="S",
                       help="seconds node 0 waits for every node to join a run "
                       "(default: %(default)g)")  # fmt: skip


def launch_of(args: argparse.Namespace) -> Launch:
    return Launch(args.nproc_per_node, args.nnodes, args.node_rank, args.rdzv_endpoint,
                  args.rdzv_timeout)  # fmt: skip


def report(args: argparse.Namespace) -> int:
    from ryot.report.html import ReportError, render_run_dir

    try:
        warn = lambda text: print(to_encoding(f"{WARN} {text}", sys.stdout.encoding))  # noqa: E731
        path = render_run_dir(args.run_dir, args.history, warn=warn)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    print(to_encoding(f"Report: {path}", getattr(sys.stdout, "encoding", None)))
    return 0


def parse_arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    known = registry.arms()
    unknown = [a for a in arms if a not in known]
    if not arms or unknown:
        raise UsageError(
            f"--arms: unknown arm {unknown[0] if unknown else text!r} "
            f"(choose from {', '.join(known)})"
        )
    return arms


def print_architecture(console: Console, config: Config, num_parameters: int) -> None:
    m = config.model
    console.line("MODEL ARCHITECTURE:")
    console.line(f"  Vocabulary: {m.vocab_size}   Max sequence length: {m.max_seq_len}")
    if m.is_factory:
        kwargs = ", ".join(f"{k}={v!r}" for k, v in m.factory_kwargs.items())
        console.line(f"  Model: {m.factory}({kwargs})")
    else:
        layers = f"Heads: {m.num_heads}   Layers: {m.num_layers}"
        console.line(f"  Embedding dim: {m.embed_dim}   {layers}")
        console.line(f"  FF dim: {m.ff_dim}   Dropout: {m.dropout}")
    d = config.data
    data = f"token files in {d.path} ({d.dtype})" if d.source == "tokens" else "synthetic language"
    console.line(f"  Data: {data}")
    console.line(f"  Total parameters: {num_parameters:,}")
    t = config.training
    console.line(
        f"  Training: {t.num_epochs} epochs x {t.steps_per_epoch} steps, batch {t.batch_size}"
        f" x {t.grad_accumulation} accumulation = {config.total_steps} optimizer steps"
    )


def run(args: argparse.Namespace, console_stream=None) -> int:
    """Check everything that can be checked (ryot.experiment.session), then train into a
    staged run folder."""
    config = load_config(args.config)
    arms = parse_arms(args.arms)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    resume = None
    if args.resume is not None:
        resume = lambda config: resumable_config(args.resume, arms, config)  # noqa: E731
    launch = launch_of(args)
    if not launch.is_main_node:
        try:
            launch.check(config, device)
        except LaunchError as exc:
            raise UsageError(str(exc)) from None
        return follow(args, config, arms, device, launch, console_stream)
    try:
        ready = preflight(
            args.config, out=args.out, device=device, arms=arms, repeats=args.repeats,
            stack=args.stack, config=config, resume=resume, fits=check_workload, launch=launch,
        )  # fmt: skip
    except PreflightError as exc:
        raise UsageError(str(exc)) from None
    folder = ready.folder
    previous = interrupt_on_sigterm()
    try:
        return train_into(folder, args, ready.config, arms, device, ready.num_parameters,
                          console_stream, launch)  # fmt: skip
    finally:
        folder.release()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def resumable_config(path: Path, arms: list[str], config: Config) -> Config:
    if not path.is_file():
        raise UsageError(f"--resume {path}: checkpoint not found")
    if len(arms) != 1:
        raise UsageError("--resume continues one arm: give exactly one in --arms")
    state = load_or_usage_error(path)
    snapshot = config_from_dict(state["config"], str(path), snapshot=True)
    check_resumable(path, state.get("arm"), snapshot, arms[0], config)
    # Continue with the checkpoint's own seed: a later pair's checkpoint has seed + repeat.
    return replace(config, training=replace(config.training, seed=snapshot.training.seed))


def follow(args, config: Config, arms, device, launch: Launch, stream) -> int:
    """Node 1, 2, ...: the same checks and plan as node 0, whose rank 0 judges and writes; this
    node writes only its job files, in a temporary folder it removes."""
    try:
        check_workload(config, str(args.config), device)
        check_stack_factory(args.stack, config, arms, device)
    except (ModelTooLarge, StackSpecError, WorkloadError) as exc:
        raise UsageError(str(exc)) from None
    console = Console(stream)
    console.heading(f"RYOT STAGE 3a: {config.name} ({args.config}), node {launch.node_rank}")
    console.line(f"Device: {device}   {launch.describe()}; node 0 writes {args.out}")
    previous = interrupt_on_sigterm()
    with tempfile.TemporaryDirectory(prefix=f"ryot-node{launch.node_rank}-") as scratch:
        runner = make_runner(device, Path(scratch), args.stack, console, launch)
        try:
            return follow_stage3a(config, Path(scratch), arms, runner, console,
                                  repeats=1 if args.resume else args.repeats,
                                  resume=args.resume)  # fmt: skip
        except KeyboardInterrupt:
            console.line(f"{FAIL} INTERRUPTED: this node's ranks were stopped.")
            return EXIT_INTERRUPTED
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def train_into(
    folder: RunFolder, args, config, arms, device, num_parameters, stream, launch: Launch
) -> int:
    """Train in the staging folder; publish it as --out only if it may replace what is there."""
    out = folder.staging
    console = Console(stream, log_path=out / "monitor.log")
    console.heading(f"RYOT STAGE 3a: {config.name} ({args.config})")
    console.line(f"Device: {device}   Output: {folder.final}")
    print_architecture(console, config, num_parameters)
    if launch.distributed:
        console.line(f"Launch: {launch.describe()} (gloo on CPU, nccl on CUDA)")
    runner = make_runner(device, out, args.stack, console, launch)
    command = " ".join(["ryot", *(args.argv or [])])
    try:
        outcome = run_stage3a(
            config, str(args.config), out, device, arms, runner, console,
            repeats=1 if args.resume else args.repeats, command=command, resume=args.resume,
            earlier=folder.final / "comparison.json",
        )  # fmt: skip
    except KeyboardInterrupt:
        console.line(f"{FAIL} INTERRUPTED: the run stopped before its verdict.")
        set_aside(folder, console)
        return EXIT_INTERRUPTED
    except OSError as exc:
        console.line(f"{FAIL} {os_error_line(exc)}")
        set_aside(folder, console)
        return EXIT_CRASH
    except Exception as exc:
        with (out / "monitor.log").open("a", encoding="utf-8") as log:
            log.write(traceback.format_exc())
        console.line(f"{FAIL} CRASH: {type(exc).__name__}: {exc}")
        set_aside(folder, console)
        return EXIT_CRASH
    ending = publish(folder, outcome, console)  # or set aside where it may not replace DIR
    if ending.published is not None:
        final = ending.published
        console.line()
        console.line(f"Artifacts: {final / 'comparison.json'}, {final / 'checkpoints'}, "
                     f"{console.log_path}")  # fmt: skip
    return ending.exit_code


def make_runner(
    device, out: Path, stack: str, console: Console, launch: Launch | None = None
) -> SubprocessRunner:
    """Every run in a fresh worker process, or a torchrun job of one per rank (tests swap this
    for an in-process runner)."""
    return SubprocessRunner(device, out, stack_factory=stack, console=console,
                            launch=launch or Launch())  # fmt: skip


def check_resumable(path: Path, saved_arm, saved: Config, arm: str, config: Config) -> None:
    """A checkpoint continues only the arm and the settings it was trained with, whatever its
    seed (see resumable_config); the trainer applies the same rule (resume_problem)."""
    problem = resume_problem(saved_arm, saved, arm, config, any_seed=True)
    if problem is not None:
        raise UsageError(f"--resume {path}: {problem}")


def load_or_usage_error(path: Path) -> dict:
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = sys.argv[1:] if argv is None else argv
        if args.command == "serve":
            from ryot.serve.command import run as serve

            return serve(args)
        if args.command == "prepare-text":
            return prepare_text.run(args, sys.stdout)
        return report(args) if args.command == "report" else run(args)
    except (UsageError, ConfigError) as exc:
        message = f"ryot: error: {exc}"
        print(to_encoding(message, getattr(sys.stderr, "encoding", None)), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ryot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours: still one line and a documented code
        if os.environ.get("RYOT_TRACEBACK"):
            raise
        message = " ".join(f"ryot: internal error: {type(exc).__name__}: {exc}".split())
        message += " (RYOT_TRACEBACK=1 shows where)"
        print(to_encoding(message, getattr(sys.stderr, "encoding", None)), file=sys.stderr)
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main())
