"""The methods by name, each a composition of `jax_ssl.losses` over the views.

  vicreg        VICReg on the two views
  sag_vicreg    VICReg with random-walk pairing on the kNN affinity graph
  visreg        (1 - lam) LeJEPA prediction + lam VISReg regularizer, multi-crop
  lejepa        (1 - lam) LeJEPA prediction + lam SIGReg, multi-crop
  swd           (1 - lam) LeJEPA prediction + lam plain sliced W2 to N(0, I), multi-crop
  tregs         T-REGS: beta MSE invariance + T-REG on each view
  barlow_twins  Barlow Twins
  simclr        NT-Xent
  byol          BYOL: predictor + EMA target, symmetric regression loss
  <name>+tregs  any of them plus T-REG (gamma L_E + lam L_S) on every view's embeddings

Random slices (VISReg, LeJEPA, SWD) go through `Context.sliced_mean`, which on a
mesh gives each device its own block of directions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.methods.base import Context
from jax_ssl.methods.base import Embeddings
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import Metrics


def _two_views(embeddings: Embeddings) -> tuple[jax.Array, jax.Array]:
  return embeddings.global_views[0], embeddings.global_views[1]


def vicreg(embeddings: Embeddings, ctx: Context) -> tuple[jax.Array, Metrics]:
  hp = ctx.hparams
  return losses.vicreg_loss(*_two_views(embeddings), hp["sim_coeff"], hp["std_coeff"], hp["cov_coeff"])


def sag_vicreg(embeddings: Embeddings, ctx: Context) -> tuple[jax.Array, Metrics]:
  hp = ctx.hparams
  return losses.sag_vicreg_loss(ctx.key, *_two_views(embeddings), k=hp["k"], percentile=hp["percentile"],
                                sim_coeff=hp["sim_coeff"], std_coeff=hp["std_coeff"], cov_coeff=hp["cov_coeff"],
                                graph=hp["graph"], scale_over=hp["scale_over"], regularize=hp["regularize"])


def _jepa(regularizer_name: str, per_view_regularizer):
  """LeJEPA-style objective: `(1 - lam) prediction + lam mean_v regularizer(view v)` over all views."""

  def objective(embeddings: Embeddings, ctx: Context) -> tuple[jax.Array, Metrics]:
    hp = ctx.hparams
    views = embeddings.all_views
    prediction = losses.prediction_loss(embeddings.global_views, views)

    def mean_over_views(views, directions):
      return jnp.mean(jax.vmap(lambda z: per_view_regularizer(z, directions, hp))(views))

    regularizer = ctx.sliced_mean(mean_over_views, views, ctx.key, hp["num_slices"])
    loss = (1.0 - hp["lam"]) * prediction + hp["lam"] * regularizer
    return loss, {"prediction": prediction, regularizer_name: regularizer}

  return objective


def visreg(embeddings: Embeddings, ctx: Context) -> tuple[jax.Array, Metrics]:
  """`losses.visreg_loss` with the slices split over the mesh: its scale, shape and center terms are logged."""
  hp = ctx.hparams
  views = embeddings.all_views
  terms = ctx.sliced_mean(lambda views, directions: losses.visreg_terms(views, directions, hp["detach_std"]),
                          views, ctx.key, hp["num_slices"])
  return losses.combine_visreg(losses.prediction_loss(embeddings.global_views, views), terms, hp["lam"],
                               hp["lambda_scale"], hp["lambda_shape"], hp["lambda_center"])


lejepa = _jepa("sigreg", lambda z, directions, hp: losses.sigreg(z, directions, knots=hp["sigreg_knots"]))
swd = _jepa("swd", lambda z, directions, hp: losses.swd_gaussian(z, directions))


def tregs(embeddings: Embeddings, ctx: Context) -> tuple[jax.Array, Metrics]:
  hp = ctx.hparams
  return losses.tregs_loss(*_two_views(embeddings), beta=hp["tregs_beta"], gamma=hp["tregs_gamma"],
                           lam=hp["tregs_lam"])


def barlow_twins(embeddings: Embeddings, ctx: Context) -> tuple[jax.Array, Metrics]:
  return losses.barlow_twins_loss(*_two_views(embeddings), lambd=ctx.hparams["barlow_lambda"])


def simclr(embeddings: Embeddings, ctx: Context) -> tuple[jax.Array, Metrics]:
  loss = losses.nt_xent(*_two_views(embeddings), temperature=ctx.hparams["temperature"])
  return loss, {"nt_xent": loss}


def byol(embeddings: Embeddings, ctx: Context) -> tuple[jax.Array, Metrics]:
  """Symmetric: view 1's prediction regresses view 2's target projection, and vice versa."""
  p1, p2 = embeddings.predictions[0], embeddings.predictions[1]
  t1, t2 = embeddings.targets[0], embeddings.targets[1]
  loss = losses.byol_loss(p1, t2) + losses.byol_loss(p2, t1)
  return loss, {"regression": loss}


def byol_target_momentum(base: float, progress: jax.Array) -> jax.Array:
  """BYOL's schedule: `1 - (1 - base) (cos(pi progress) + 1) / 2`, from base at the start to 1 at the end."""
  return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


METHODS: dict[str, Method] = {
    method.name: method
    for method in [
        Method("vicreg", vicreg),
        Method("sag_vicreg", sag_vicreg),
        Method("visreg", visreg, multi_crop=True, sliced=True),
        Method("lejepa", lejepa, multi_crop=True, sliced=True),
        Method("swd", swd, multi_crop=True, sliced=True),
        Method("tregs", tregs),
        Method("barlow_twins", barlow_twins),
        Method("simclr", simclr),
        Method("byol", byol, predictor=True, target=True),
    ]
}

_ADD_ON = "+tregs"


def _with_t_reg(base: Method) -> Method:
  """`base` plus T-REG on every view's embeddings: `+ mean_v (gamma L_E(z_v) + lam L_S(z_v))` times the views."""

  def objective(embeddings: Embeddings, ctx: Context) -> tuple[jax.Array, Metrics]:
    hp = ctx.hparams
    loss, metrics = base.objective(embeddings, ctx)
    # T-REGS adds t_reg(Z) + t_reg(Z'): one term per view, summed.
    # A loop, not vmap: the MST's exact-distance fallback is a `lax.cond`, which vmap would turn
    # into computing both branches for every view.
    t_reg_total = sum(losses.t_reg(z, hp["tregs_gamma"], hp["tregs_lam"]) for z in embeddings.all_views)
    return loss + t_reg_total, {**metrics, "t_reg": t_reg_total}

  return Method(base.name + _ADD_ON, objective, base.multi_crop, base.predictor, base.target, base.sliced)


def get_method(name: str) -> Method:
  """The method called `name`: one of `METHODS`, optionally with `+tregs`."""
  base_name = name[: -len(_ADD_ON)] if name.endswith(_ADD_ON) else name
  if base_name not in METHODS or base_name == "tregs" and name != base_name:
    known = ", ".join(sorted(METHODS))
    raise ValueError(f"unknown method {name!r}; methods: {known}, and any of them (but tregs) with '+tregs'.")
  return METHODS[base_name] if name == base_name else _with_t_reg(METHODS[base_name])
