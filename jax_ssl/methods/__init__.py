"""Self-supervised methods by name: compositions of `jax_ssl.losses` over the views of a batch."""

from jax_ssl.methods.base import Context
from jax_ssl.methods.base import Embeddings
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import sliced_mean_on_one_device
from jax_ssl.methods.registry import METHODS
from jax_ssl.methods.registry import byol_target_momentum
from jax_ssl.methods.registry import get_method

__all__ = [
    "Context",
    "Embeddings",
    "METHODS",
    "Method",
    "byol_target_momentum",
    "get_method",
    "sliced_mean_on_one_device",
]
