"""SAG-VICReg (Simai et al., 2025) on the bundled data, on a CPU.

VICReg with random-walk pairing on a kNN graph; k=5, the kernel's scale the 20th percentile.

  python -m jax_ssl.main --config configs/sag_vicreg.py --workdir workdirs/sag_vicreg
  python -m jax_ssl.main --config configs/sag_vicreg.py:shapes --workdir workdirs/sag_vicreg_shapes

The first trains on `digits` in a few minutes on 2 CPU cores. Its report.md
compares the trained encoder with its initialisation and with the input
pixels; on `digits` the pixels are as strong as any encoder trained here
(kNN 0.975). `:shapes` is the run that shows what pretraining adds: the
readings experiment's CPU scale (a small CNN of width 16, 16 px views,
batch 128, 3000 steps; 10-15 minutes) on the bundled `shapes`, where the
trained encoder beats both controls with the linear probe at every label
level and with kNN at the fine level (experiments/RESULTS.md,
"configs/sag_vicreg.py"; 3 seeds). The walk uses the
library's default reading (`graph="same_view"`: experiments/RESULTS.md,
sag_vicreg_readings); `--config.method.sag_vicreg.graph=cross_view` etc. select the
others. Arguments: `:shapes`, `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base
from configs.common import shapes_scale


def get_config(arg=None):
  config = bundled_base("sag_vicreg")
  config.method.sag_vicreg.update(k=5, percentile=20.0)
  return apply_arg(config, arg, {"shapes": shapes_scale})
