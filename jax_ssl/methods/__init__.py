"""Self-supervised methods: typed objectives composing `jax_ssl.losses` over the views of a batch."""

from jax_ssl.methods.add_ons import ADD_ON
from jax_ssl.methods.add_ons import ADD_ON_SECTION
from jax_ssl.methods.add_ons import WithTReg
from jax_ssl.methods.base import AnyEmbeddings
from jax_ssl.methods.base import Embeddings
from jax_ssl.methods.base import HeadKind
from jax_ssl.methods.base import ImageText
from jax_ssl.methods.base import MaskedPatches
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import RunShape
from jax_ssl.methods.base import TargetBlocks
from jax_ssl.methods.base import sliced_loss_on_one_device
from jax_ssl.methods.clip import CLIP
from jax_ssl.methods.ema_target import BYOL
from jax_ssl.methods.ema_target import DINO
from jax_ssl.methods.ema_target import IJEPA
from jax_ssl.methods.ema_target import EMATarget
from jax_ssl.methods.joint import TREGS
from jax_ssl.methods.joint import BarlowTwins
from jax_ssl.methods.joint import SAGVICReg
from jax_ssl.methods.joint import SimCLR
from jax_ssl.methods.joint import VICReg
from jax_ssl.methods.mae import MAE
from jax_ssl.methods.registry import METHODS
from jax_ssl.methods.registry import from_config
from jax_ssl.methods.registry import get_method
from jax_ssl.methods.registry import hyperparameters
from jax_ssl.methods.sliced import SWD
from jax_ssl.methods.sliced import LeJEPA
from jax_ssl.methods.sliced import SlicedPrediction
from jax_ssl.methods.sliced import VISReg

__all__ = [
    "ADD_ON",
    "ADD_ON_SECTION",
    "AnyEmbeddings",
    "BarlowTwins",
    "BYOL",
    "CLIP",
    "DINO",
    "EMATarget",
    "Embeddings",
    "from_config",
    "get_method",
    "HeadKind",
    "hyperparameters",
    "IJEPA",
    "ImageText",
    "LeJEPA",
    "MAE",
    "MaskedPatches",
    "Method",
    "METHODS",
    "RunShape",
    "SAGVICReg",
    "SimCLR",
    "sliced_loss_on_one_device",
    "SlicedPrediction",
    "SWD",
    "TargetBlocks",
    "TREGS",
    "VICReg",
    "VISReg",
    "WithTReg",
]
