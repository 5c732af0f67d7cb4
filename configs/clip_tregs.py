"""CLIP plus T-REG on each modality's embeddings (T-REGS, Table 3), on the bundled `shapes`, on a CPU.

configs/clip.py's run with `method.name = "clip+tregs"`: the loss adds
`gamma L_E + lam L_S` (T-REG: the batch's minimum spanning tree length, and
the soft sphere constraint) on the images' embeddings and on their
captions', as CLIP compares them: normalised, so the sphere term is zero
and the MST term spreads each modality over the sphere.

  python -m jax_ssl.main --config configs/clip_tregs.py --workdir workdirs/clip_tregs

Arguments: `:smoke`, `:first_half` / `:second_half`.
"""

from configs.clip import clip_config
from configs.common import apply_arg


def get_config(arg=None):
  return apply_arg(clip_config("clip+tregs"), arg)
