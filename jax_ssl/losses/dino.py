"""DINO's self-distillation loss and the running center of its teacher.

The student matches, on every view, the teacher's sharpened and centered
distribution over K prototypes computed on a *different* global view:

  q_t = softmax((t - c) / tau_t),   p_v = softmax(s_v / tau_s),
  L = mean over pairs (t, v), v != t, of mean_n  -sum_k q_t[n, k] log p_v[n, k],

with t over the global views the teacher saw and v over every view the
student saw (global views first, so view v = t is the same crop). Centering
(subtracting c, a running mean of the teacher's outputs) keeps one prototype
from dominating; sharpening (tau_t < tau_s) keeps the distribution from
going uniform; together they avoid collapse without negatives or a predictor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jax_ssl.losses import _checks


def dino_loss(student: ArrayLike, teacher: ArrayLike, center: ArrayLike, student_temperature: float = 0.1,
              teacher_temperature: float = 0.04) -> jax.Array:
  """DINO's cross-entropy between the teacher's centered, sharpened outputs and the student's.

  `q_t = softmax((teacher_t - center) / teacher_temperature)` (no gradient),
  `log p_v = log_softmax(student_v / student_temperature)`; the loss is the
  mean of `-sum_k q_t log p_v` over the batch and over every pair of a
  teacher view t and a student view v != t (student views are the same global
  views in the same order, then the local ones).

  Args:
    student: (V, N, K) student outputs (logits over K prototypes) of every view, global views first.
    teacher: (V_g, N, K) teacher outputs of the global views, 1 <= V_g <= V, V >= 2; no gradient.
    center: (K,) running center of the teacher's outputs (`dino_center`), subtracted before sharpening.
    student_temperature: tau_s, dividing the student's logits.
    teacher_temperature: tau_t, dividing the teacher's centered logits (below tau_s: sharpening).

  Returns:
    The scalar loss.

  Raises:
    ValueError: for stacks that are not 3-D, a teacher with more views than the student or another
      batch or width, fewer than two student views, or a center that is not (K,).

  References:
    Caron, Touvron, Misra, Jegou, Mairal, Bojanowski, Joulin, "Emerging Properties in
    Self-Supervised Vision Transformers", ICCV 2021, Sec. 3.1 and Algorithm 1.
  """
  student = _checks.views("student", student)
  teacher = _checks.views("teacher", teacher)
  center = jnp.asarray(center, jnp.float32)
  num_views, num_teacher = student.shape[0], teacher.shape[0]
  if teacher.shape[1:] != student.shape[1:] or num_teacher > num_views or num_views < 2:
    raise ValueError(f"teacher (V_g, N, K) must share N and K with student (V, N, K), with V_g <= V and V >= 2; "
                     f"got {teacher.shape} and {student.shape}.")
  if center.shape != teacher.shape[2:]:
    raise ValueError(f"center must be ({teacher.shape[2]},), one value per prototype; got {center.shape}.")
  targets = jax.nn.softmax(lax.stop_gradient((teacher - center) / teacher_temperature), axis=-1)
  log_probs = jax.nn.log_softmax(student / student_temperature, axis=-1)
  # cross[t, v] = mean_n -sum_k q_t log p_v, for every teacher view t and student view v.
  cross = -jnp.einsum("tnk,vnk->tv", targets, log_probs) / student.shape[1]
  different = jnp.arange(num_teacher)[:, None] != jnp.arange(num_views)[None, :]
  return jnp.sum(jnp.where(different, cross, 0.0)) / jnp.sum(different)


def dino_center(center: ArrayLike, teacher: ArrayLike, momentum: float = 0.9) -> jax.Array:
  """The teacher's running center after a step: `m c + (1 - m) mean_{t, n} teacher[t, n]`.

  The mean runs over every global view and sample of the global batch (under
  a sharded `jit` the arrays are global, so no all-reduce is needed).

  Args:
    center: (K,) the center before the step.
    teacher: (V_g, N, K) the teacher's (uncentered) outputs of the step.
    momentum: m, the weight of the old center.

  Returns:
    The (K,) float32 center, without gradient.

  References:
    Caron et al., ICCV 2021, Eq. (4).
  """
  teacher = lax.stop_gradient(_checks.views("teacher", teacher))
  return momentum * jnp.asarray(center, jnp.float32) + (1.0 - momentum) * jnp.mean(teacher, axis=(0, 1))
