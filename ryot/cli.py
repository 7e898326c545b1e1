"""`ryot stage3a ...`: train the Stage 3a arms, judge them, print the seed plan's tables.
`ryot report RUN_DIR`: render a run folder's HTML report again, without training.

Exit codes: 0 GO (or a single arm trained fine), 1 INVESTIGATE, 2 usage or config error,
3 DEBUG (crash, divergence, an optimization with no effect).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from dataclasses import replace
from pathlib import Path

from ryot.checkpoint import CheckpointError, load_checkpoint
from ryot.config import Config, ConfigError, config_from_dict, load_config
from ryot.console import FAIL, Console, to_encoding
from ryot.model import ScaledTransformerModel
from ryot.optim import ARMS as OPTIM_ARMS
from ryot.protocol import SubprocessRunner
from ryot.stage3a import ensure_run_dir, run_stage3a
from ryot.train import resolve_device

EXIT_USAGE, EXIT_CRASH = 2, 3
ARMS = tuple(OPTIM_ARMS)


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump, exit 2
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ryot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    stage = sub.add_parser("stage3a", help="train and compare the Stage 3a arms")
    stage.add_argument("--config", type=Path, default=Path("configs/stage3a.yaml"))
    stage.add_argument("--out", type=Path, default=Path("reports/stage3a"))
    stage.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    stage.add_argument(
        "--arms",
        default="baseline,optimized",
        help=f"comma-separated arms: {', '.join(ARMS)} (default: baseline,optimized)",
    )
    stage.add_argument("--repeats", type=int, help="interleaved pairs (default: the config's)")
    stage.add_argument("--resume", type=Path, help="continue one arm from its checkpoint")
    stage.add_argument(
        "--stack",
        default="ryot.optim:build_stack",
        metavar="MODULE:FUNCTION",
        help="build each arm's optimization stack with this function (to validate your own)",
    )
    report = sub.add_parser("report", help="render DIR/report.html again from DIR/comparison.json")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.add_argument(
        "--history", type=Path, action="append", default=[], metavar="RUN_DIR",
        help="an earlier run folder for the history trend (repeatable; siblings are found too)",
    )  # fmt: skip
    serve = sub.add_parser("serve", help="serve a GO run's checkpoint over HTTP (Stage 3b)")
    from ryot.serve.command import add_arguments  # the server's own dependencies load lazily

    add_arguments(serve)
    return parser


def report(args: argparse.Namespace) -> int:
    from ryot.report.html import ReportError, render_run_dir

    try:
        path = render_run_dir(args.run_dir, args.history)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    print(to_encoding(f"Report: {path}", getattr(sys.stdout, "encoding", None)))
    return 0


def parse_arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if not arms or unknown:
        raise UsageError(
            f"--arms: unknown arm {unknown[0] if unknown else text!r} "
            f"(choose from {', '.join(ARMS)})"
        )
    return arms


def prepare_out_dir(out: Path) -> Path:
    """Create DIR and DIR/checkpoints, and prove they are writable, before any training."""
    try:
        ensure_run_dir(out)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror})") from None
    return out


def print_architecture(console: Console, config: Config, num_parameters: int) -> None:
    m = config.model
    console.line("MODEL ARCHITECTURE:")
    console.line(f"  Vocabulary: {m.vocab_size}   Max sequence length: {m.max_seq_len}")
    console.line(f"  Embedding dim: {m.embed_dim}   Heads: {m.num_heads}   Layers: {m.num_layers}")
    console.line(f"  FF dim: {m.ff_dim}   Dropout: {m.dropout}")
    console.line(f"  Total parameters: {num_parameters:,}")
    t = config.training
    console.line(
        f"  Training: {t.num_epochs} epochs x {t.steps_per_epoch} steps, batch {t.batch_size}"
        f" x {t.grad_accumulation} accumulation = {config.total_steps} optimizer steps"
    )


def run(args: argparse.Namespace, console_stream=None) -> int:
    config = load_config(args.config)
    arms = parse_arms(args.arms)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.repeats is not None and args.repeats < 1:
        raise UsageError(f"--repeats: must be >= 1, got {args.repeats}")
    if args.resume is not None:
        if not args.resume.is_file():
            raise UsageError(f"--resume {args.resume}: checkpoint not found")
        if len(arms) != 1:
            raise UsageError("--resume continues one arm: give exactly one in --arms")
        state = load_or_usage_error(args.resume)
        snapshot = config_from_dict(state["config"], str(args.resume))
        check_resumable(args.resume, state.get("arm"), snapshot, arms[0], config)
        # Continue with the checkpoint's own seed: a later pair's checkpoint has seed + repeat.
        config = replace(config, training=replace(config.training, seed=snapshot.training.seed))
    out = prepare_out_dir(args.out)
    log_path = out / "monitor.log"
    log_path.write_text("", encoding="utf-8")
    console = Console(console_stream, log_path=log_path)
    console.heading(f"RYOT STAGE 3a: {config.name} ({args.config})")
    console.line(f"Device: {device}   Output: {out}")
    print_architecture(console, config, ScaledTransformerModel(config.model).count_parameters())
    runner = make_runner(device, out, args.stack, console)
    command = " ".join(["ryot", *(args.argv or [])])
    try:
        outcome = run_stage3a(
            config, str(args.config), out, device, arms, runner, console,
            repeats=1 if args.resume else args.repeats, command=command, resume=args.resume,
        )  # fmt: skip
    except Exception as exc:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(traceback.format_exc())
        console.line(f"{FAIL} CRASH: {type(exc).__name__}: {exc} (traceback in {log_path})")
        return EXIT_CRASH
    render_report_if_available(out, console)
    console.line()
    console.line(f"Artifacts: {out / 'comparison.json'}, {out / 'checkpoints'}, {log_path}")
    return outcome.exit_code


def make_runner(device, out: Path, stack: str, console: Console) -> SubprocessRunner:
    """Every run in a fresh worker process (tests swap this for an in-process runner)."""
    return SubprocessRunner(device, out, stack_factory=stack, console=console)


def check_resumable(path: Path, saved_arm, saved: Config, arm: str, config: Config) -> None:
    """A checkpoint continues only the arm and the settings it was trained with."""
    if saved_arm != arm:
        raise UsageError(f"--resume {path}: checkpoint is of arm {saved_arm!r}, not {arm!r}")
    for section in ("model", "data", "optimizations"):
        if getattr(saved, section) != getattr(config, section):
            raise UsageError(f"--resume {path}: checkpoint was trained with a different {section} "
                             "config")  # fmt: skip
    ignored_seed = replace(saved.training, seed=config.training.seed)
    if ignored_seed != config.training:
        raise UsageError(
            f"--resume {path}: checkpoint was trained with a different training config"
        )


def load_or_usage_error(path: Path) -> dict:
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None


def render_report_if_available(out: Path, console: Console) -> None:
    """The HTML report, when the report package is installed in this build."""
    try:
        from ryot.report.html import render_run_dir
    except ImportError:
        return
    path = render_run_dir(out)
    console.line(f"Report: {path}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = sys.argv[1:] if argv is None else argv
        if args.command == "serve":
            from ryot.serve.command import run as serve

            return serve(args)
        return report(args) if args.command == "report" else run(args)
    except (UsageError, ConfigError) as exc:
        message = f"ryot: error: {exc}"
        print(to_encoding(message, getattr(sys.stderr, "encoding", None)), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ryot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
