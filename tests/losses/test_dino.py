"""DINO's self-distillation loss and its teacher center against float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses
from tests.gradcheck import assert_grad_matches_reference


def _outputs(num_views=5, num_global=2, n=12, k=10, seed=0):
  rng = np.random.default_rng(seed)
  student = rng.standard_normal((num_views, n, k)).astype(np.float32)
  teacher = (student[:num_global] + 0.5 * rng.standard_normal((num_global, n, k))).astype(np.float32)
  center = (0.3 * rng.standard_normal(k)).astype(np.float32)
  return student, teacher, center


def _softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  e = np.exp(x)
  return e / e.sum(axis=-1, keepdims=True)


def ref_dino(student, teacher, center, student_temperature=0.1, teacher_temperature=0.04):
  """Algorithm 1 of the paper, pair by pair, in float64."""
  student, teacher, center = (np.asarray(a, np.float64) for a in (student, teacher, center))
  total, pairs = 0.0, 0
  for t in range(len(teacher)):
    q = _softmax((teacher[t] - center) / teacher_temperature)
    for v in range(len(student)):
      if v == t:
        continue
      log_p = np.log(_softmax(student[v] / student_temperature))
      total += np.mean(-np.sum(q * log_p, axis=-1))
      pairs += 1
  return total / pairs


@pytest.mark.parametrize("num_views,num_global,temperatures", [(5, 2, (0.1, 0.04)), (2, 2, (0.2, 0.07)),
                                                               (6, 3, (0.1, 0.1))])
def test_dino_loss_matches_float64(num_views, num_global, temperatures):
  student, teacher, center = _outputs(num_views, num_global)
  loss = jax.jit(losses.dino_loss, static_argnums=(3, 4))(student, teacher, center, *temperatures)
  np.testing.assert_allclose(loss, ref_dino(student, teacher, center, *temperatures), rtol=1e-5)


def test_dino_gradient_flows_to_the_student_only():
  student, teacher, center = _outputs(num_views=3, n=4, k=5)
  assert_grad_matches_reference(lambda s: losses.dino_loss(s, teacher, center),
                                lambda s: ref_dino(s, teacher, center), student)
  teacher_grad = jax.grad(lambda t: losses.dino_loss(student, t, center))(teacher)
  np.testing.assert_array_equal(teacher_grad, 0.0)


def test_dino_loss_is_invariant_to_permuting_the_batch_and_shifting_the_student_logits():
  student, teacher, center = _outputs()
  loss = losses.dino_loss(student, teacher, center)
  order = np.random.default_rng(1).permutation(student.shape[1])
  np.testing.assert_allclose(losses.dino_loss(student[:, order], teacher[:, order], center), loss, rtol=1e-6)
  # A softmax does not see a constant added to a row's logits.
  np.testing.assert_allclose(losses.dino_loss(student + 3.0, teacher + 2.0, center), loss, rtol=1e-5)


def test_centering_subtracts_the_center_before_sharpening():
  student, teacher, center = _outputs()
  shifted = losses.dino_loss(student, teacher + center, 2 * center)
  np.testing.assert_allclose(shifted, losses.dino_loss(student, teacher, center), rtol=1e-5)


def test_dino_center_is_an_ema_of_the_teachers_batch_mean():
  _, teacher, center = _outputs()
  expected = 0.9 * center.astype(np.float64) + 0.1 * teacher.astype(np.float64).mean(axis=(0, 1))
  np.testing.assert_allclose(losses.dino_center(center, teacher, 0.9), expected, rtol=1e-6)
  np.testing.assert_array_equal(jax.grad(lambda t: losses.dino_center(center, t).sum())(teacher), 0.0)


@pytest.mark.parametrize("where", ["student", "teacher", "center"])
def test_a_nan_anywhere_gives_a_nan_loss(where):
  arrays = dict(zip(("student", "teacher", "center"), _outputs()))
  arrays[where] = arrays[where].copy()
  arrays[where].flat[3] = np.nan
  assert np.isnan(losses.dino_loss(**arrays))


@pytest.mark.parametrize("shapes,message", [
    (((4, 8, 10), (2, 8, 10), (10,)), None),
    (((8, 10), (2, 8, 10), (10,)), "student must be a 3-D"),
    (((4, 8, 10), (2, 7, 10), (10,)), "teacher .* must share N and K with student"),
    (((2, 8, 10), (3, 8, 10), (10,)), "V_g <= V"),
    (((1, 8, 10), (1, 8, 10), (10,)), "V >= 2"),
    (((4, 8, 10), (2, 8, 10), (9,)), r"center must be \(10,\)"),
])
def test_wrong_shapes_name_the_argument(shapes, message):
  arrays = [jnp.zeros(shape) for shape in shapes]
  if message is None:
    assert np.isfinite(losses.dino_loss(*arrays))
  else:
    with pytest.raises(ValueError, match=message):
      losses.dino_loss(*arrays)
