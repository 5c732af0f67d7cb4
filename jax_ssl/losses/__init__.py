"""Embedding losses of VICReg, SAG-VICReg, VISReg, LeJEPA, T-REG(S), the baselines, DINO, MAE, I-JEPA and CLIP.

Every function is pure and `jit`-able, takes (N, D) embeddings (views stacked
as (V, N, D) where stated), computes in float32 whatever the input dtype, and
is defined on the *global* batch: under a sharded `jit` it gives the
single-device value. Randomness enters only through explicit keys or
`directions` arrays. Wrong ranks or mismatched shapes raise `ValueError` at
trace time, naming the argument.

Terms return a float32 scalar. The composite objectives (`vicreg_loss`,
`sag_vicreg_loss`, `visreg_loss`, `tregs_loss`, `barlow_twins_loss`) return
`(loss, metrics)` with their unweighted terms in `metrics`.
"""

from jax_ssl.losses.baselines import barlow_twins_loss
from jax_ssl.losses.baselines import byol_loss
from jax_ssl.losses.baselines import nt_xent
from jax_ssl.losses.clip import clip_loss
from jax_ssl.losses.dino import dino_center
from jax_ssl.losses.dino import dino_loss
from jax_ssl.losses.ijepa import ijepa_loss
from jax_ssl.losses.mae import mae_loss
from jax_ssl.losses.sag_vicreg import knn_affinity
from jax_ssl.losses.sag_vicreg import random_walk_pairs
from jax_ssl.losses.sag_vicreg import sag_vicreg_loss
from jax_ssl.losses.sketching import sigreg
from jax_ssl.losses.sketching import swd_gaussian
from jax_ssl.losses.tregs import mst_length
from jax_ssl.losses.tregs import mst_length_loss
from jax_ssl.losses.tregs import sphere_loss
from jax_ssl.losses.tregs import t_reg
from jax_ssl.losses.tregs import tregs_loss
from jax_ssl.losses.vicreg import covariance
from jax_ssl.losses.vicreg import invariance
from jax_ssl.losses.vicreg import variance
from jax_ssl.losses.vicreg import vicreg_loss
from jax_ssl.losses.visreg import center_loss
from jax_ssl.losses.visreg import combine_visreg
from jax_ssl.losses.visreg import prediction_loss
from jax_ssl.losses.visreg import scale_loss
from jax_ssl.losses.visreg import shape_loss
from jax_ssl.losses.visreg import visreg_loss
from jax_ssl.losses.visreg import visreg_regularizer
from jax_ssl.losses.visreg import visreg_terms
from jax_ssl.ops.mst import mst_edges
from jax_ssl.ops.slices import gaussian_quantiles
from jax_ssl.ops.slices import random_directions

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "center_loss",
    "clip_loss",
    "combine_visreg",
    "covariance",
    "dino_center",
    "dino_loss",
    "gaussian_quantiles",
    "invariance",
    "ijepa_loss",
    "knn_affinity",
    "mae_loss",
    "mst_edges",
    "mst_length",
    "mst_length_loss",
    "nt_xent",
    "prediction_loss",
    "random_directions",
    "random_walk_pairs",
    "sag_vicreg_loss",
    "scale_loss",
    "shape_loss",
    "sigreg",
    "sphere_loss",
    "swd_gaussian",
    "t_reg",
    "tregs_loss",
    "variance",
    "vicreg_loss",
    "visreg_loss",
    "visreg_regularizer",
    "visreg_terms",
]
