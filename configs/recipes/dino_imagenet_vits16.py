"""DINO ViT-S/16 on ImageNet-1K, the paper's recipe (Caron et al., ICCV 2021, Sec. 4 and App.).

  python -m jax_ssl.main --config configs/recipes/dino_imagenet_vits16.py --workdir workdirs/dino_imagenet \
      --config.data.data_dir=$TFDS_DATA_DIR

The comparator of SAG-VICReg's Table 3 and VISReg's tables. Multi-crop: 2
global 224 px crops (scale 0.4-1) and 10 local 96 px crops (scale
0.05-0.4). DINO head 2048-2048-256 with GELU, K = 65,536 prototypes. AdamW,
batch 1024, learning rate 5e-4 x batch / 256 after 10 warmup epochs, cosine
to 1e-6; weight decay 0.04; gradient clipping at 3.0; stochastic depth 0.1;
bfloat16. Student temperature 0.1; teacher temperature 0.04 rising linearly
to 0.07 over the first 30 epochs; centering momentum 0.9; teacher momentum
0.996 to 1 on a cosine; 800 epochs (100 for the paper's ablations).

Not implemented here: the weight decay's cosine schedule from 0.04 to 0.4
(fixed at 0.04) and freezing the last layer during the first epoch.
Arguments: `:epochs100` (the ablation length), `:smoke`.
"""

from configs.common import apply_arg
from jax_ssl.train.config import base_config

IMAGENET_TRAIN_IMAGES = 1_281_167
BATCH = 1024
TEACHER_WARMUP_EPOCHS = 30


def epochs100(config) -> None:
  """The paper's ablation length."""
  config.train.num_epochs = 100


def get_config(arg=None):
  config = base_config()
  config.method.name = "dino"
  steps_per_epoch = IMAGENET_TRAIN_IMAGES // BATCH
  config.method.dino.update(num_prototypes=65536, student_temperature=0.1, warmup_teacher_temperature=0.04,
                            teacher_temperature=0.07, warmup_teacher_steps=TEACHER_WARMUP_EPOCHS * steps_per_epoch,
                            center_momentum=0.9, tau_base=0.996)
  config.data.name = "imagenet2012"
  config.views.update(recipe="multicrop", size=224, local_size=96, num_global=2, num_local=10,
                      global_scale=(0.4, 1.0), local_scale=(0.05, 0.4), small_images=False)
  config.model.update(backbone="vit_small", patch_size=16, projector="2048-2048-256", projector_activation="gelu",
                      dtype="bfloat16", drop_path=0.1)
  config.optim.update(name="adamw", base_lr=5e-4, scale_lr_by_batch=True, weight_decay=0.04, warmup_epochs=10.0,
                      end_lr_fraction=1e-6 / (5e-4 * BATCH / 256), grad_clip_norm=3.0)
  config.train.update(global_batch_size=BATCH, num_epochs=800, log_every=100, checkpoint_every=2500,
                      eval_every=25000)
  return apply_arg(config, arg, {"epochs100": epochs100})
