"""T-REGS on CIFAR-10/100 with ResNet-18 (Mordacq et al.).

Alone with the MSE invariance, or added to BYOL or Barlow Twins:

  python -m jax_ssl.main --config configs/recipes/tregs_cifar_resnet18.py:cifar10 --workdir workdirs/tregs_cifar10 \
      --config.data.data_dir=$TFDS_DATA_DIR
  python -m jax_ssl.main --config configs/recipes/tregs_cifar_resnet18.py:cifar100,byol \
      --workdir workdirs/byol_tregs_cifar100 --config.data.data_dir=$TFDS_DATA_DIR

The slides' protocol (inherited from Fang et al.): ResNet-18 pretrained for
500 epochs with batch 256, then a linear probe. T-REG coefficients
gamma = 0.2 and lambda = 8e-4 with beta = 10 on the MSE invariance: the best
row of their ImageNet-1k coefficient table; the CIFAR values are not given.
The BYOL and Barlow Twins variants keep their own recipes (projectors,
momentum 0.99, lambda 5e-3) and add T-REG on both views' embeddings. The
slides give no coefficients for them; BYOL's T-REG weights keep the MSE
recipe's ratios with BYOL's loss as the beta-weighted term (gamma 0.02,
lambda 8e-5; configs/byol_tregs.py says why), Barlow Twins' are the MSE
recipe's.
Arguments: a dataset (`cifar10` default, `cifar100`), a method (`mse` default,
`byol`, `barlow_twins`), `:smoke`; e.g. `:cifar100,byol`.
"""

from configs.common import apply_arg
from jax_ssl.train.config import base_config


def _byol(config):
  config.method.name = "byol+tregs"
  config.method.byol.tau_base = 0.99
  config.views.recipe = "byol"
  config.model.update(projector="4096-256", predictor="4096-256")
  config.method.t_reg.update(gamma=0.02, lam=8e-5)
  config.optim.update(base_lr=1.0, weight_decay=1.5e-6)


def _barlow_twins(config):
  config.method.name = "barlow_twins+tregs"
  config.method.barlow_twins.lambd = 5e-3
  config.model.projector = "2048-2048-2048"


def get_config(arg=None):
  config = base_config()
  config.method.name = "tregs"
  config.method.tregs.update(beta=10.0, gamma=0.2, lam=8e-4)
  config.data.name = "cifar10"
  config.views.update(recipe="vicreg", size=32, small_images=True)
  config.model.update(backbone="resnet18", stem="cifar", projector="2048-2048-2048")
  config.optim.update(name="lars", base_lr=0.3, weight_decay=1e-6, warmup_epochs=10.0)
  config.train.update(global_batch_size=256, num_epochs=500, log_every=100, checkpoint_every=2000, eval_every=5000)
  variants = {
      "cifar10": lambda c: setattr(c.data, "name", "cifar10"),
      "cifar100": lambda c: setattr(c.data, "name", "cifar100"),
      "mse": lambda c: None,
      "byol": _byol,
      "barlow_twins": _barlow_twins,
  }
  return apply_arg(config, arg, variants)
