"""VICReg and SAG-VICReg on CIFAR-100 with ResNet-34: the SAG-VICReg paper's setup (Simai et al., 2025, App. D-F).

  python -m jax_ssl.main --config configs/recipes/cifar100_resnet34.py:sag_vicreg \
      --workdir workdirs/sag_vicreg_cifar100 --config.data.data_dir=$TFDS_DATA_DIR
  python -m jax_ssl.main --config configs/recipes/cifar100_resnet34.py:vicreg --workdir workdirs/vicreg_cifar100 \
      --config.data.data_dir=$TFDS_DATA_DIR

ResNet-34 (CIFAR stem, 512-d representation), a 3-layer expander to 1024-d,
coefficients 25/25/1, k = 5 neighbours and the 20th-percentile local scale for
SAG-VICReg, LARS (weight decay 1e-6, biases and norms excluded), 10 warmup
epochs then cosine, 500 epochs, batch 200. Base learning rate 1.3 (App. F:
"a base learning rate of 1.3" for the invariance-based models, stated next to
ImageNet's batch 256; CIFAR keeps "the same" settings at batch 200), scaled by
batch / 256 as in VICReg's code: a peak of 1.3 x 200 / 256 = 1.02.
SAG-VICReg's reading of the paper (graph, scale, regularized batch) is the
library default (`jax_ssl.losses.sag_vicreg_loss`).
Arguments: `:vicreg` (default) or `:sag_vicreg`; `:first_half` / `:second_half`
(classes 0-49 / 50-99: the paper's two-model protocol); `:smoke`.
"""

from configs.common import apply_arg
from jax_ssl.train.config import base_config


def get_config(arg=None):
  config = base_config()
  config.method.name = "vicreg"
  config.method.vicreg.update(sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0)
  config.method.sag_vicreg.update(sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, k=5, percentile=20.0)
  config.data.name = "cifar100"
  config.views.update(recipe="vicreg", size=32, small_images=True)
  config.model.update(backbone="resnet34", stem="cifar", projector="1024-1024-1024")
  config.optim.update(name="lars", base_lr=1.3, weight_decay=1e-6, warmup_epochs=10.0)
  config.train.update(global_batch_size=200, num_epochs=500, log_every=100, checkpoint_every=2000, eval_every=5000)
  variants = {name: (lambda c, name=name: setattr(c.method, "name", name)) for name in ("vicreg", "sag_vicreg")}
  return apply_arg(config, arg, variants)
