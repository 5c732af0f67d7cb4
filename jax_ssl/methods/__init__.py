"""Self-supervised methods: typed objectives composing `jax_ssl.losses` over the views of a batch."""

from jax_ssl.methods.base import EMATarget
from jax_ssl.methods.base import Embeddings
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import sliced_loss_on_one_device
from jax_ssl.methods.registry import ADD_ON
from jax_ssl.methods.registry import ADD_ON_SECTION
from jax_ssl.methods.registry import BYOL
from jax_ssl.methods.registry import CLIP
from jax_ssl.methods.registry import DINO
from jax_ssl.methods.registry import IJEPA
from jax_ssl.methods.registry import MAE
from jax_ssl.methods.registry import METHODS
from jax_ssl.methods.registry import SWD
from jax_ssl.methods.registry import TREGS
from jax_ssl.methods.registry import BarlowTwins
from jax_ssl.methods.registry import LeJEPA
from jax_ssl.methods.registry import SAGVICReg
from jax_ssl.methods.registry import SimCLR
from jax_ssl.methods.registry import VICReg
from jax_ssl.methods.registry import VISReg
from jax_ssl.methods.registry import WithTReg
from jax_ssl.methods.registry import from_config
from jax_ssl.methods.registry import get_method
from jax_ssl.methods.registry import hyperparameters

__all__ = [
    "ADD_ON",
    "ADD_ON_SECTION",
    "BYOL",
    "BarlowTwins",
    "CLIP",
    "DINO",
    "EMATarget",
    "Embeddings",
    "IJEPA",
    "LeJEPA",
    "MAE",
    "METHODS",
    "Method",
    "SAGVICReg",
    "SWD",
    "SimCLR",
    "TREGS",
    "VICReg",
    "VISReg",
    "WithTReg",
    "from_config",
    "get_method",
    "hyperparameters",
    "sliced_loss_on_one_device",
]
