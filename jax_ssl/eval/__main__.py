"""`python -m jax_ssl.eval`: see jax_ssl.eval.cli."""

import sys

from jax_ssl.eval.cli import main

if __name__ == "__main__":
  sys.exit(main())
