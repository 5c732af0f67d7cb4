"""jax_ssl: self-supervised pretraining with explicit embedding regularizers."""
