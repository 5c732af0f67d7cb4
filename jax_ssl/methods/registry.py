"""The registry: each method's name in configs -> its class, and construction from a config.

  vicreg        VICReg on the two views
  sag_vicreg    VICReg with random-walk pairing on the kNN affinity graph
  visreg        (1 - lam) LeJEPA prediction + lam VISReg regularizer, multi-crop, sliced
  lejepa        (1 - lam) LeJEPA prediction + lam SIGReg, multi-crop, sliced
  swd           (1 - lam) LeJEPA prediction + lam plain sliced W2 to N(0, I), multi-crop, sliced
  tregs         T-REGS: beta MSE invariance + T-REG on each view
  barlow_twins  Barlow Twins
  simclr        NT-Xent
  byol          BYOL: predictor + EMA target, symmetric regression loss
  dino          DINO: EMA teacher, centered and sharpened, DINO head, multi-crop
  mae           MAE: a ViT encodes the visible patches, a decoder reconstructs the hidden ones
  ijepa         I-JEPA: a context block predicts an EMA target encoder's tokens of hidden blocks
  clip          CLIP: images against their captions (a dataset with captions), learned temperature
  <name>+tregs  any of them (but tregs) plus T-REG (gamma L_E + lam L_S) on every view's embeddings

The classes live by family: `joint` (two-view joint embedding), `sliced`,
`ema_target`, `mae`, `clip` and `add_ons`. A new method is a class in its
family's module (or a new one) plus one line in `METHODS`. Each method's
config section (`method.<name>`, and `method.t_reg` for the add-on) holds
exactly its dataclass fields; `from_config` builds the method from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from jax_ssl.methods.add_ons import ADD_ON
from jax_ssl.methods.add_ons import ADD_ON_SECTION
from jax_ssl.methods.add_ons import WithTReg
from jax_ssl.methods.base import Method
from jax_ssl.methods.clip import CLIP
from jax_ssl.methods.ema_target import BYOL
from jax_ssl.methods.ema_target import DINO
from jax_ssl.methods.ema_target import IJEPA
from jax_ssl.methods.joint import TREGS
from jax_ssl.methods.joint import BarlowTwins
from jax_ssl.methods.joint import SAGVICReg
from jax_ssl.methods.joint import SimCLR
from jax_ssl.methods.joint import VICReg
from jax_ssl.methods.mae import MAE
from jax_ssl.methods.sliced import SWD
from jax_ssl.methods.sliced import LeJEPA
from jax_ssl.methods.sliced import VISReg

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (VICReg, SAGVICReg, VISReg, LeJEPA, SWD, TREGS,
                                                              BarlowTwins, SimCLR, BYOL, DINO, MAE, IJEPA,
                                                              CLIP)}


def hyperparameters(cls: type[Method]) -> dict:
  """The fields of a method class with their defaults: its config section (`WithTReg`: without `base`).

  Args:
    cls: a `Method` subclass (a dataclass).

  Returns:
    A dict from field name to default value, in field order.
  """
  return {field.name: field.default for field in dataclasses.fields(cls) if field.name != "base"}


def get_method(name: str, **hyperparameters) -> Method:
  """The method called `name` (one of `METHODS`, optionally with `+tregs`), defaults unless given.

  With `+tregs`, `hyperparameters` go to the base method; build `WithTReg`
  directly to set the add-on's own.

  Args:
    name: a key of `METHODS`, or one (but `"tregs"`) followed by `"+tregs"`.
    **hyperparameters: fields of the base method's dataclass; the others keep their defaults.

  Returns:
    The `Method` instance, wrapped in `WithTReg` (default gamma and lam) for a `+tregs` name.

  Raises:
    ValueError: an unknown name, or a hyperparameter out of range (one line).
    TypeError: a hyperparameter the method's dataclass has no field for.
  """
  base_name = name.removesuffix(ADD_ON)
  if base_name not in METHODS or base_name == TREGS.name and name != base_name:
    known = ", ".join(sorted(METHODS))
    raise ValueError(f"unknown method {name!r}; methods: {known}, and any of them (but tregs) with '{ADD_ON}'.")
  method = METHODS[base_name](**hyperparameters)
  return method if name == base_name else WithTReg(method)


def from_config(section: Mapping) -> Method:
  """The method of a config's `method` section: `name`, built from its own subsection.

  `method.<name>` holds the base method's hyperparameters; with `+tregs`,
  `method.t_reg` holds the add-on's (gamma, lam).

  Args:
    section: the config's `method` mapping: `name`, the base method's subsection under its name, and
      `t_reg` for a `+tregs` name.

  Returns:
    The configured `Method` (a `WithTReg` around the base method for a `+tregs` name).

  Raises:
    ValueError: an unknown name, or a hyperparameter out of range (one line naming it).
    KeyError: `section` lacks `name`, the method's subsection, or `t_reg` for a `+tregs` name.
    TypeError: a subsection holds a key that is not a field of its dataclass.
  """
  name = section["name"]
  get_method(name)  # an unknown name is named before its section is looked for
  method = get_method(name.removesuffix(ADD_ON), **dict(section[name.removesuffix(ADD_ON)]))
  return WithTReg(method, **dict(section[ADD_ON_SECTION])) if name.endswith(ADD_ON) else method

