"""The default run: SAG-VICReg pretraining of a small CNN on the bundled `shapes`, on a CPU.

  python -m jax_ssl.main --config configs/default.py --workdir workdirs/default

SAG-VICReg (Simai et al., 2025), the library's flagship: VICReg whose
invariance term pairs each image with a partner drawn by a random walk on a
kNN graph of the batch (k = 5, the kernel's scale the 20th percentile of the
neighbours' distances). On the bundled `shapes` (36 fine classes under 9
shapes and 3 families) with `configs/sag_vicreg.py:shapes`'s scale (a small
CNN of width 16, 16 px views, batch 128, one warmup epoch), shortened to 1500
steps: about 2 minutes on 2 CPU cores, where report.md shows the trained
encoder above both controls, the input pixels and the same network at
initialisation, with the linear probe at the fine level (README,
experiments/RESULTS.md "configs/default.py"; 3 seeds). `configs/vicreg.py`
is plain VICReg on `digits`. Arguments: `:smoke` (seconds), `:first_half` /
`:second_half` (train on classes 0-17 / 18-35), `key=value`.
"""

from configs.common import apply_arg
from configs.common import bundled_base
from configs.common import shapes_scale

DEFAULT_STEPS = 1500


def get_config(arg=None):
  config = bundled_base("sag_vicreg")
  config.method.sag_vicreg.update(k=5, percentile=20.0)
  shapes_scale(config)
  config.train.update(num_steps=DEFAULT_STEPS, log_every=50, checkpoint_every=500)
  return apply_arg(config, arg)
