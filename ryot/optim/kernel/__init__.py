"""KernelOptimizer: faster kernels for the same mathematics.

Levels are cumulative:
  1  scaled_dot_product_attention instead of explicit matmul/softmax attention, and the fused
     AdamW implementation (one kernel for all parameters instead of a loop of small ops).
  2  bf16 autocast where the hardware executes bf16 natively (CPU AVX512-BF16 or AMX, CUDA
     with bf16 support), and TF32 matmuls on CUDA. On hardware without native bf16, autocast
     would emulate it and be slower, so it is skipped and the evidence says why. TF32 is a
     process-wide switch: `close` puts back the flags it found, so that a later arm in the
     same process (the baseline) runs in true fp32.
  3  torch.compile of the model, with dynamic sequence length so that a length warmup does not
     recompile once per length; compile seconds and recompiles are counted.

On a model Ryot does not own, fused AdamW, bf16 autocast, TF32 and torch.compile apply as they
are; the attention switch applies only to the modules ryot.optim.kernel.attention recognises,
and where there are none the evidence records the skip instead of claiming SDPA.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ryot.bench.model import CausalSelfAttention
from ryot.optim.base import Optimization, RunFacts
from ryot.optim.kernel.attention import RECOGNISED, attention_modules, set_sdpa


def cpu_has_native_bf16() -> bool:
    """True when this CPU executes bf16 dot products in hardware (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether bf16 autocast is native on `device`, and why (for the evidence)."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(device)
        return ok, f"{name} {'supports' if ok else 'does not support'} bf16"
    if cpu_has_native_bf16():
        return True, "CPU has AVX512-BF16/AMX-BF16"
    return (
        False,
        "CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag): emulated bf16 is slower",
    )


def _tf32_flags() -> tuple[bool, bool]:
    """The cuBLAS matmul and cuDNN TF32 switches, through torch's allow_tf32 API (every torch
    this project supports has it). Reading raises RuntimeError when the newer fp32_precision API
    was used in this process: torch refuses a mix of the two."""
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def _set_tf32(matmul: bool, cudnn: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = cudnn


def _dynamo_counters() -> dict[str, float]:
    from torch._dynamo.utils import compilation_time_metrics, counters

    # Dynamo's compile_inner covers a frame's whole compile: tracing, AOT autograd and Inductor
    # for the forward and (eagerly, in this torch) the backward graph. Adding the nested
    # phases would count the same seconds twice.
    seconds = sum(compilation_time_metrics.get("_compile.compile_inner", []))
    return {
        "frames_compiled": int(counters["stats"]["unique_graphs"]),
        "recompiles": int(sum(counters["recompiles"].values())),
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "compile_seconds": seconds,
    }


class KernelOptimizer(Optimization):
    name = "kernel"

    def __init__(self, device: torch.device, level: int):
        self.level = level
        super().__init__(device)
        self.evidence.settings = {"level": level}
        self.bf16 = False
        self.compiled: nn.Module | None = None
        self._compile_start: dict[str, int] = {}
        self._tf32_before: tuple[bool, bool] | None = None  # set while TF32 is switched on
        self.tf32_in_training: bool | None = None  # the matmul flag read when training ended
        self.attention_switched = 0  # attention modules this optimization moved to SDPA

    @property
    def enabled(self) -> bool:
        return self.level > 0

    def prepare_model(self, model: nn.Module) -> nn.Module:
        ev = self.evidence
        if self.level >= 1:
            self._switch_attention(model)
            ev.applied.append("fused AdamW")  # AdamW's own option: any model's parameters
        if self.level >= 2:
            self.bf16, why = native_bf16(self.device)
            if self.bf16:
                ev.applied.append(f"bf16 autocast ({why})")
            else:
                ev.skip("bf16 autocast", why)
            self._enable_tf32()
        if self.level >= 3:
            import torch._dynamo as dynamo  # binds only `dynamo`: `torch` stays the global

            dynamo.reset()
            self._compile_start = _dynamo_counters()
            # dynamic=True: one graph serves every sequence length of a length warmup.
            self.compiled = torch.compile(model, dynamic=True)
            ev.applied.append("torch.compile (dynamic sequence length)")
            return self.compiled
        return model

    def _switch_attention(self, model: nn.Module) -> None:
        """SDPA in every attention module Ryot recognises (ryot.optim.kernel.attention); a model
        with none, or whose modules all use it already, keeps its own and the evidence says so."""
        ev = self.evidence
        modules = attention_modules(model)
        if not modules:
            ev.skip(
                "scaled_dot_product_attention",
                f"no attention module Ryot recognises ({RECOGNISED})",
            )
            return
        self.attention_switched = set_sdpa(model, True)
        if not self.attention_switched:
            ev.skip(
                "scaled_dot_product_attention",
                f"all {len(modules)} attention modules already use it (the model's own choice)",
            )
        elif all(isinstance(m, CausalSelfAttention) for m in modules):
            ev.applied.append("scaled_dot_product_attention")
        else:
            ev.applied.append(
                f"scaled_dot_product_attention ({self.attention_switched} of {len(modules)} "
                "attention modules switched)"
            )

    def _enable_tf32(self) -> None:
        if self.device.type != "cuda":
            self.evidence.skip("TF32", "TF32 exists only on CUDA")
            return
        try:
            before = _tf32_flags()
        except RuntimeError:
            self.evidence.skip("TF32", "precision already set through torch's fp32_precision API")
            return
        _set_tf32(True, True)
        self._tf32_before = before
        self.evidence.applied.append("TF32 matmuls")

    def close(self) -> None:
        if self._tf32_before is None:
            return
        self.tf32_in_training = _tf32_flags()[0]
        _set_tf32(*self._tf32_before)
        self._tf32_before = None

    def optimizer_options(self) -> dict[str, Any]:
        return {"fused": True} if self.level >= 1 else {}

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def finish(self, run: RunFacts) -> None:
        self.close()  # first: whatever the probe does, the flags go back
        ev = self.evidence
        if not self.enabled:
            return
        # The reference is this arm with explicit attention in fp32: any token dropping stays.
        arm, ref = run.probe.arm(), run.probe.without_kernels()
        optimizer = run.optimizer
        fused = bool(optimizer.param_groups[0].get("fused"))
        ev.measurements.update(
            attention_ops=sorted(arm.attention_ops),
            reference_attention_ops=sorted(ref.attention_ops),
            matmul_dtypes=sorted(arm.matmul_dtypes),
            reference_matmul_dtypes=sorted(ref.matmul_dtypes),
            optimizer_fused=fused,
        )
        if self.tf32_in_training is not None:
            ev.measurements["tf32_matmuls_in_training"] = self.tf32_in_training
        compiled_graphs = 0
        if self.compiled is not None:
            end = _dynamo_counters()
            counts = {k: end[k] - self._compile_start.get(k, 0) for k in end}
            counts["compile_seconds"] = round(counts["compile_seconds"], 3)
            compiled_graphs = counts["frames_compiled"]
            ev.measurements.update(counts)
        # The reference runs every recognised module explicitly: a model that chose SDPA itself
        # differs from it too, but that difference is the model's, not this optimization's.
        changed = (
            (self.attention_switched > 0 and arm.attention_ops != ref.attention_ops)
            or arm.matmul_dtypes != ref.matmul_dtypes
            or fused
            or compiled_graphs > 0
        )
        if not changed:
            ev.no_effect(
                "same attention kernels and matmul dtypes as this arm with explicit fp32 "
                "attention, an unfused optimizer and no compiled graph"
            )
