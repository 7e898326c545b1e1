"""`ryot stage3a ...`: train the Stage 3a arms and print the seed plan's tables.

Exit codes: 0 success, 2 usage or config error, 3 crash or divergence.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from ryot.checkpoint import CheckpointError
from ryot.config import Config, ConfigError, load_config
from ryot.console import FAIL, OK, Console, to_encoding
from ryot.train import ArmResult, EpochMetrics, Trainer, resolve_device

EXIT_OK, EXIT_USAGE, EXIT_CRASH = 0, 2, 3
ARMS = ("baseline",)


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
        "--arms", default="baseline", help=f"comma-separated arms: {', '.join(ARMS)}"
    )
    stage.add_argument("--resume", type=Path, help="continue an arm from its checkpoint")
    return parser


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
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
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


EPOCH_HEADER = ["Epoch", "Loss", "Time (s)", "Throughput (tok/s)", "Status"]
EPOCH_WIDTHS = [5, 9, 8, 18, 6]


def epoch_row(e: EpochMetrics) -> list[str]:
    return [
        str(e.epoch),
        f"{e.mean_loss:.4f}",
        f"{e.time_s:.2f}",
        f"{e.tokens_per_s:,.0f}",
        OK if e.status == "ok" else FAIL,
    ]


def train_arm(console: Console, config: Config, arm: str, out: Path, device, resume):
    console.heading(f"{arm.upper()} TRAINING")
    console.table(EPOCH_HEADER, [], EPOCH_WIDTHS)
    trainer = Trainer(
        config,
        arm=arm,
        device=device,
        checkpoint_path=out / "checkpoints" / f"{arm}.pt",
        on_epoch=lambda e: console.row(epoch_row(e), EPOCH_WIDTHS),
        on_step=lambda step, total, loss: console.progress(
            f"  step {step}/{total}  loss {loss:.4f}"
        ),
    )
    result = trainer.run(resume=resume)
    print_summary(console, arm, result)
    return result


def print_summary(console: Console, arm: str, r: ArmResult) -> None:
    console.line()
    if r.diverged:
        console.line(f"{FAIL} {arm.upper()} TRAINING DIVERGED: {r.divergence}")
        return
    epochs = len(r.epochs)
    tokens = sum(e.tokens for e in r.epochs)
    console.line(f"{arm.upper()} TRAINING COMPLETE")
    if r.resumed_from_step:
        console.line(f"Resumed from step: {r.resumed_from_step}")
    console.line(f"Total time: {r.total_time_s:.2f} seconds (setup {r.setup_time_s:.2f} s)")
    console.line(f"Average epoch time: {r.train_time_s / epochs:.2f} seconds")
    console.line(f"Final loss: {r.final_loss:.4f} (first epoch {r.epochs[0].mean_loss:.4f})")
    console.line(f"Validation loss: {r.val_loss:.4f} (entropy floor {r.entropy_floor:.4f})")
    console.line(f"Average throughput: {tokens / r.train_time_s:,.0f} tok/s")
    console.line(f"Peak memory: {r.peak_memory_mb:.0f} MiB ({r.memory_method})")


def run_stage3a(args: argparse.Namespace, console_stream=None) -> int:
    config = load_config(args.config)
    arms = parse_arms(args.arms)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.resume is not None and not args.resume.is_file():
        raise UsageError(f"--resume {args.resume}: checkpoint not found")
    out = prepare_out_dir(args.out)
    log_path = out / "monitor.log"
    log_path.write_text("", encoding="utf-8")
    console = Console(console_stream, log_path=log_path)
    console.heading(f"RYOT STAGE 3a: {config.name} ({args.config})")
    console.line(f"Device: {device}   Output: {out}")
    from ryot.model import ScaledTransformerModel

    print_architecture(console, config, ScaledTransformerModel(config.model).count_parameters())
    status = EXIT_OK
    try:
        for arm in arms:
            result = train_arm(console, config, arm, out, device, args.resume)
            if result.diverged:
                status = EXIT_CRASH
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(traceback.format_exc())
        console.line(f"{FAIL} CRASH: {type(exc).__name__}: {exc} (traceback in {log_path})")
        return EXIT_CRASH
    console.line()
    console.line(f"Checkpoints: {out / 'checkpoints'}   Log: {log_path}")
    return status


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return run_stage3a(args)
    except (UsageError, ConfigError) as exc:
        message = f"ryot: error: {exc}"
        print(to_encoding(message, getattr(sys.stderr, "encoding", None)), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ryot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
