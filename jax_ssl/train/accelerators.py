"""The accelerators a dry run can plan for: published peak throughput and memory (no JAX import).

`jax_ssl.main` reads these for its `--accelerator` and `--mfu` flags before
JAX is imported (`--devices` must set XLA's flags first); `train.plan` turns
them into step times and a memory check.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Accelerator:
  """A device's published peak dense bfloat16 FLOP/s and its memory."""

  name: str
  peak_flops: float
  memory_bytes: float


# Vendors' published peak dense (not sparse) bf16 throughput and memory per chip.
ACCELERATORS = {
    "h100": Accelerator("NVIDIA H100 SXM", 989e12, 80e9),
    "h200": Accelerator("NVIDIA H200 SXM", 989e12, 141e9),
    "tpu_v4": Accelerator("TPU v4", 275e12, 32 * 2**30),
    "tpu_v5e": Accelerator("TPU v5e", 197e12, 16 * 2**30),
    "tpu_v5p": Accelerator("TPU v5p", 459e12, 95 * 2**30),
}
# The model-FLOPs utilisation assumed when a step time is derived from a peak (stated in every plan).
DEFAULT_MFU = 0.4
