"""The peer adapters: hand-checkable runs, capabilities, refusals, sparse, checkpoints.

Each peer is skipped when its library is missing.  The expected trajectories are
computed inline in float64 from each framework's own formula (its epsilon
placement), independently of the adapters and of ``adamax_spec``.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from adamax_spec.conformance.case import CAPABILITIES, Case, SparseGrad, Trajectory, Unsupported

pytestmark = pytest.mark.peers

# ---------------------------------------------------------------------------------------------
# Adapters, one per peer; each test skips when the library is not installed.


def _torch() -> object:
    pytest.importorskip("torch")
    from adamax_spec.conformance.adapters.torch_optim import TorchOptimAdapter

    return TorchOptimAdapter()


def _optax() -> object:
    pytest.importorskip("optax")
    from adamax_spec.conformance.adapters.optax_adapter import OptaxAdapter

    return OptaxAdapter()


def _keras3() -> object:
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3."):
        pytest.skip(f"keras {keras.__version__} is not Keras 3")
    from adamax_spec.conformance.adapters.keras_adapter import Keras3Adapter

    return Keras3Adapter()


def _tf_keras() -> object:
    pytest.importorskip("tf_keras")
    from adamax_spec.conformance.adapters.keras_adapter import TfKerasLegacyAdapter

    return TfKerasLegacyAdapter()


MAKERS = {"torch": _torch, "optax": _optax, "keras3": _keras3, "tf_keras": _tf_keras}
_CACHE: dict[str, object] = {}


@pytest.fixture(params=sorted(MAKERS))
def peer(request: pytest.FixtureRequest) -> tuple[str, object]:
    key = request.param
    if key not in _CACHE:
        _CACHE[key] = MAKERS[key]()
    return key, _CACHE[key]


def _adapter(key: str) -> object:
    if key not in _CACHE:
        _CACHE[key] = MAKERS[key]()
    return _CACHE[key]


# ---------------------------------------------------------------------------------------------
# Independent float64 references: the two epsilon placements, written out plainly.

LR, B1, B2 = 0.1, 0.9, 0.999
# eps is large enough (next to a gradient of 1e-3 and a zero gradient) that the two
# placements give visibly different u and w at step 2: a wrong mapping of epsilon fails.
EPS = 1e-3
W0 = np.array([0.5, -1.25, 0.125], dtype=np.float32)
GRADS = [
    np.array([0.25, -0.5, 1e-3], dtype=np.float32),
    np.array([-0.125, 0.75, 0.0], dtype=np.float32),
]


def reference_eps_inside(w, grads, lr, b1, b2, eps, b1_moment=None, b1_bias=None):
    """torch.optim.Adamax / optax.adamax: u = max(b2*u, |g| + eps); w -= lr/(1-b1^t) * m/u."""
    return _reference(w, grads, lr, b1, b2, eps, b1_moment, b1_bias, eps_inside=True)


def reference_eps_outside(w, grads, lr, b1, b2, eps, b1_moment=None, b1_bias=None):
    """Keras 3 / tf_keras legacy (Keras 2.9): u = max(b2*u, |g|); w -= lr/(1-b1^t) * m/(u+eps)."""
    return _reference(w, grads, lr, b1, b2, eps, b1_moment, b1_bias, eps_inside=False)


def _reference(w, grads, lr, b1, b2, eps, b1_moment, b1_bias, *, eps_inside):
    """Plain float64 Adamax.  ``b1_moment`` / ``b1_bias``: the beta_1 a framework really
    uses in ``1 - b1`` (the m update) and in ``1 - b1**t`` (bias correction)."""
    b1m = b1 if b1_moment is None else b1_moment
    b1b = b1 if b1_bias is None else b1_bias
    w, m, u = np.array(w, np.float64), np.zeros(len(w)), np.zeros(len(w))
    out = []
    for t, g in enumerate(grads, start=1):
        g = np.array(g, np.float64)
        m_scale = np.maximum(np.abs(b1m * m), np.abs((1 - b1m) * g))  # largest term of the sum
        m = b1m * m + (1 - b1m) * g
        if eps_inside:
            u = np.maximum(b2 * u, np.abs(g) + eps)
            step = lr / (1 - b1b**t) * m / u
        else:
            u = np.maximum(b2 * u, np.abs(g))
            step = lr / (1 - b1b**t) * m / (u + eps)
        w_scale = np.maximum(np.abs(w), np.abs(step))
        w = w - step
        out.append((w.copy(), m.copy(), u.copy(), w_scale, m_scale))
    return out


FORMULA = {
    "torch": reference_eps_inside,
    "optax": reference_eps_inside,
    "keras3": reference_eps_outside,
    "tf_keras": reference_eps_outside,
}
# Where a framework subtracts a float32-rounded beta_1 from 1, the rounding error of
# float32(0.9) (2.4e-8) becomes a relative error of 2.4e-7 in 0.1, i.e. 3 float32 ulps:
# too much to fold into the tolerance, so the reference uses that rounded beta_1 there.
# Every other hyperparameter rounding costs at most half an ulp and is left to the bound.
#   torch: 1-b1 and 1-b1**t in Python doubles (adamax.py:277, :300)       -> nothing rounded
#   optax: 1 - decay**count with decay float32 in JAX (_tree_math.py:454)   -> bias only
#   keras3: 1 - pow(cast(beta_1, float32), t); 1 - self.beta_1 in Python   -> bias only
#   tf_keras: beta_1 is a float32 variable; the kernel computes 1 - beta1  -> both
F32_B1 = float(np.float32(B1))
ROUNDED_B1 = {
    "torch": {},
    "optax": {"b1_bias": F32_B1},
    "keras3": {"b1_bias": F32_B1},
    "tf_keras": {"b1_moment": F32_B1, "b1_bias": F32_B1},
}

# Tolerance: 4 float32 ulps of the largest term entering each value (m_scale, w_scale,
# u itself).  With the amplified beta_1 rounding taken into the reference (above), what is
# left is first order in the unit roundoff eps32 = 2**-24, and eps32*|x| < spacing(x):
# - m: the float32 weight (1-b1 or b1) plus 2-3 rounded ops, each <= eps32 * m_scale;
#   step 2 inherits step 1's error times b1 < 1, still <= m_scale.  About 3 ulps at most.
# - u: b2 rounded, one product, max/abs/+eps exact or one rounding: <= 2 ulps of u.
# - w: the step lr/(1-b1^t)*m/u carries m's and u's relative errors plus ~4 roundings of
#   its own, but |step| <= 0.1 and below |w| here, so it moves w by < 1 ulp of w_scale; w is
#   rounded once per step: 2 steps <= 3 ulps.
# Measured worst case over the four peers: 0.8 ulp.  A wrong formula is off by far more:
# the two epsilon placements differ by ~1600 ulps at step 2 (asserted below).
ULPS = 4


def _assert_ulps(got: np.ndarray, want: np.ndarray, scale: np.ndarray, what: str) -> None:
    bound = ULPS * np.spacing(np.abs(scale).astype(np.float32)).astype(np.float64)
    err = np.abs(np.asarray(got, np.float64) - want)
    assert np.all(err <= bound), f"{what}: error {err} exceeds {ULPS} ulps {bound}"


def _case(**kw: object) -> Case:
    hyper = {"learning_rate": LR, "beta_1": B1, "beta_2": B2, "epsilon": EPS}
    hyper.update(kw.pop("hyper", {}))  # type: ignore[arg-type]
    return Case(params=[W0], grads=[[g] for g in GRADS], hyper=hyper, **kw)  # type: ignore[arg-type]


def test_hand_checked_two_steps(peer: tuple[str, object]) -> None:
    key, adapter = peer
    traj = adapter.run(_case())
    ref = FORMULA[key](W0, GRADS, LR, B1, B2, EPS, **ROUNDED_B1[key])
    assert len(traj.params) == len(traj.m) == len(traj.u) == 2
    assert traj.dtypes == ["float32"]
    for k, (w, m, u, w_scale, m_scale) in enumerate(ref, start=1):
        _assert_ulps(traj.params[k - 1][0], w, w_scale, f"{key} w after step {k}")
        _assert_ulps(traj.m[k - 1][0], m, m_scale, f"{key} m after step {k}")
        _assert_ulps(traj.u[k - 1][0], u, u, f"{key} u after step {k}")
    # The other placement is far outside the tolerance: the test does tell them apart
    # (they differ only through eps*(1-b2) in the decayed u, ~1e-5 in w[2] here).
    other = reference_eps_outside if FORMULA[key] is reference_eps_inside else reference_eps_inside
    w_other, _, _, w_scale, _ = other(W0, GRADS, LR, B1, B2, EPS, **ROUNDED_B1[key])[-1]
    ulps_off = np.abs(traj.params[-1][0] - w_other) / np.spacing(w_scale.astype(np.float32))
    assert np.max(ulps_off) > 100 * ULPS


EXPECTED = {
    "torch": {"dense", "state", "checkpoint", "float16", "bfloat16", "float64", "validation",
              "none_grad", "groups", "inputs"},
    "optax": {"dense", "state", "checkpoint", "float16", "bfloat16", "float64"},
    "keras3": {"dense", "sparse", "clipvalue", "clipnorm", "global_clipnorm", "schedule",
               "callable_lr", "state", "checkpoint", "float16", "bfloat16", "float64", "none_grad",
               "validation"},
    # no "bfloat16": TensorFlow has no dense ResourceApplyAdaMax kernel for it
    "tf_keras": {"dense", "sparse", "clipvalue", "clipnorm", "global_clipnorm", "schedule",
                 "callable_lr", "state", "checkpoint", "validation", "float16", "float64", "none_grad",
                 "clip_combination", "decay"},
}


def test_capabilities(peer: tuple[str, object]) -> None:
    key, adapter = peer
    expected = set(EXPECTED[key])
    if key == "keras3" and adapter.backend != "tensorflow":
        expected.discard("sparse")
    assert adapter.capabilities == expected
    assert adapter.capabilities <= set(CAPABILITIES)
    assert isinstance(adapter.name, str) and adapter.name


def _sparse_case(dtype: str = "float32") -> Case:
    """A (4, 2) table: step 1 touches rows 0 and 2, step 2 only row 2 (twice: duplicates sum)."""
    table = np.arange(8, dtype=np.float32).reshape(4, 2) / 4
    g1 = SparseGrad(np.array([0, 2]), np.array([[0.5, -0.5], [1.0, 0.25]], np.float32), (4, 2))
    g2 = SparseGrad(np.array([2, 2]), np.array([[0.25, 0.5], [-0.5, 0.5]], np.float32), (4, 2))
    hyper = {"learning_rate": LR, "beta_1": B1, "beta_2": B2, "epsilon": 1e-7}
    return Case(params=[table], grads=[[g1], [g2]], hyper=hyper, dtype=dtype)


@pytest.mark.parametrize("key", ["torch", "optax"])
def test_sparse_is_unsupported(key: str) -> None:
    adapter = _adapter(key)
    with pytest.raises(Unsupported) as info:
        adapter.run(_sparse_case())
    assert info.value.capability == "sparse"


def test_tf_keras_legacy_sparse_is_lazy() -> None:
    traj = _adapter("tf_keras").run(_sparse_case())
    before, after = traj.params[0][0], traj.params[1][0]
    # Rows 0, 1, 3 get no gradient at step 2: w, m and u stay bit-identical there
    # although row 0 has non-zero m from step 1.
    for rows in ([0, 1, 3],):
        assert np.array_equal(after[rows], before[rows])
        assert np.array_equal(traj.m[1][0][rows], traj.m[0][0][rows])
        assert np.array_equal(traj.u[1][0][rows], traj.u[0][0][rows])
    assert np.any(traj.m[0][0][0] != 0)
    assert not np.array_equal(after[2], before[2])


def test_keras3_sparse_moves_every_row() -> None:
    adapter = _adapter("keras3")
    if adapter.backend != "tensorflow":
        pytest.skip("sparse gradients need Keras 3's tensorflow backend")
    traj = adapter.run(_sparse_case())
    before, after = traj.params[0][0], traj.params[1][0]
    # Measured: Keras 3 densifies the IndexedSlices, so row 0 (m != 0 from step 1, no
    # gradient at step 2) still moves, and m decays in every row.
    assert np.all(after[0] != before[0])
    assert np.all(traj.m[1][0][0] != traj.m[0][0][0])
    assert np.all(traj.u[1][0][0] < traj.u[0][0][0])
    # Rows never touched have m = u = 0, so their update is 0 * lr / eps: they stay put.
    assert np.array_equal(after[[1, 3]], before[[1, 3]])


def _same(a: Trajectory, b: Trajectory) -> bool:
    def eq(x: list[np.ndarray] | None, y: list[np.ndarray] | None) -> bool:
        if x is None or y is None:
            return x is y
        return all(np.array_equal(p, q, equal_nan=True) for p, q in zip(x, y, strict=True))

    return (
        len(a.params) == len(b.params)
        and all(eq(x, y) for x, y in zip(a.params, b.params, strict=True))
        and all(eq(x, y) for x, y in zip(a.m, b.m, strict=True))
        and all(eq(x, y) for x, y in zip(a.u, b.u, strict=True))
        and a.dtypes == b.dtypes
    )


def test_checkpoint_round_trip_is_bit_identical(peer: tuple[str, object]) -> None:
    _, adapter = peer
    rng = np.random.default_rng(7)
    params = [rng.standard_normal(s).astype(np.float32) for s in ((5,), (2, 3))]
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for _ in range(4)]
    hyper = {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    whole = adapter.run(Case(params, grads, hyper))
    for at in (0, 2, 4):
        assert _same(adapter.run(Case(params, grads, hyper, checkpoint_at=at)), whole), at


@pytest.mark.parametrize("key", ["torch", "optax"])
def test_no_clipping_or_schedules_emulated(key: str) -> None:
    adapter = _adapter(key)
    for extra, cap in (({"clipvalue": 1.0}, "clipvalue"), ({"clipnorm": 1.0}, "clipnorm"),
                       ({"global_clipnorm": 1.0}, "global_clipnorm")):
        with pytest.raises(Unsupported) as info:
            adapter.run(_case(hyper=extra))
        assert info.value.capability == cap
    schedule = {"class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5}}
    with pytest.raises(Unsupported) as info:
        adapter.run(_case(hyper={"learning_rate": schedule}))
    assert info.value.capability == "schedule"


@pytest.mark.parametrize("key", ["torch", "optax", "keras3"])
def test_legacy_decay_is_refused_where_the_framework_has_none(key: str) -> None:
    """torch's ``weight_decay`` is another thing, optax has none, Keras 3 takes ``decay=`` only to
    warn that it ignores it: a case with Keras 2.9's ``decay`` is not supported, never run without it."""
    with pytest.raises(Unsupported) as info:
        _adapter(key).run(_case(hyper={"decay": 0.5}))
    assert info.value.capability == "decay"


@pytest.mark.parametrize("key", ["torch", "optax"])
def test_per_step_learning_rate_is_refused_where_no_callable_is_taken(key: str) -> None:
    with pytest.raises(Unsupported) as info:
        _adapter(key).run(_case(hyper={"learning_rate": (0.1, 0.05)}))
    assert info.value.capability == "callable_lr"


@pytest.mark.parametrize("key", ["keras3", "tf_keras"])
def test_callable_learning_rate_is_called_each_step(key: str) -> None:
    """beta_1 = beta_2 = 0, g = 1: step k moves w by lr_k / (1 + eps), lr_k the callable's value at
    step k (0.1, then 0.05): a callable read once would move it by 0.1 twice."""
    case = Case([np.zeros(1, np.float32)], [[np.ones(1, np.float32)]] * 2,
                {"learning_rate": (0.1, 0.05), "beta_1": 0.0, "beta_2": 0.0, "epsilon": 1e-7})
    traj = _adapter(key).run(case)
    deltas = -np.diff([0.0] + [float(w[0][0]) for w in traj.params])
    np.testing.assert_array_max_ulp(np.float32(deltas), np.float32([0.1 / (1 + 1e-7), 0.05 / (1 + 1e-7)]), maxulp=4)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_sparse_indices_reach_the_target_in_their_dtype(dtype: str) -> None:
    """int32 and int64, the two dtypes an IndexedSlices takes, are passed as drawn (SP-1 draws both)."""
    pytest.importorskip("tf_keras")
    import tensorflow as tf

    from adamax_spec.conformance.adapters.keras_adapter import _indexed_slices
    from adamax_spec.conformance.adapters.ours import OursTarget

    g = SparseGrad(np.array([1, 0, 1], dtype=dtype), np.ones((3, 2)), (2, 2))
    assert _indexed_slices(tf, g, tf.float32).indices.dtype.name == dtype
    assert str(OursTarget("numpy", "keras")._idx(g.indices).dtype) == dtype


def test_optax_refuses_missing_gradient() -> None:
    case = _case()
    case = Case(case.params, [[None], case.grads[1]], case.hyper)
    with pytest.raises(Unsupported) as info:
        _adapter("optax").run(case)
    assert info.value.capability == "none_grad"


def test_keras3_refuses_clip_combination() -> None:
    with pytest.raises(Unsupported) as info:
        _adapter("keras3").run(_case(hyper={"clipvalue": 1.0, "clipnorm": 1.0}))
    assert info.value.capability == "clip_combination"


def test_tf_keras_legacy_dense_bfloat16_is_unsupported() -> None:
    grads = [[np.array([0.25, -0.5, 0.0], np.float32)]]  # bfloat16-representable values
    case = Case([W0], grads, _case().hyper, dtype="bfloat16")
    with pytest.raises(Unsupported) as info:
        _adapter("tf_keras").run(case)
    assert info.value.capability == "bfloat16"


@pytest.mark.parametrize("key", ["keras3", "tf_keras"])
def test_keras_schedule_is_the_frameworks_own(key: str) -> None:
    # ExponentialDecay(0.1, decay_steps=1, rate=0.5) halves lr each step; Keras 2.9
    # configs carry name=None.  Step 1 uses lr 0.1 in both Keras generations.
    schedule = {"class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": LR, "decay_steps": 1, "decay_rate": 0.5,
                           "staircase": False, "name": None}}
    plain = _adapter(key).run(_case())
    decayed = _adapter(key).run(_case(hyper={"learning_rate": schedule}))
    assert np.array_equal(decayed.params[0][0], plain.params[0][0])
    assert not np.array_equal(decayed.params[1][0], plain.params[1][0])


def test_adapter_for_recognizes_peers() -> None:
    from adamax_spec.conformance.adapters import keras_adapter, optax_adapter, torch_optim

    for finder in (torch_optim.adapter_for, optax_adapter.adapter_for, keras_adapter.adapter_for):
        assert finder(3) is None
        assert finder(len) is None
        assert finder(object) is None
    if _importable("torch"):
        import torch

        assert torch_optim.adapter_for(torch.optim.Adamax).name == "torch.optim.Adamax"
        assert torch_optim.adapter_for(torch.optim.SGD) is None
    if _importable("optax"):
        import optax

        assert optax_adapter.adapter_for(optax.adamax).name == "optax.adamax"
        assert optax_adapter.adapter_for(optax.sgd) is None
    if _importable("tf_keras"):
        import tf_keras

        found = keras_adapter.adapter_for(tf_keras.optimizers.legacy.Adamax)
        assert found.name == "tf_keras.optimizers.legacy.Adamax"
        assert keras_adapter.adapter_for(tf_keras.optimizers.legacy.SGD) is None
    if _importable("keras"):
        import keras

        if keras.__version__.startswith("3."):
            found = keras_adapter.adapter_for(keras.optimizers.Adamax)
            assert found.name.startswith("keras.optimizers.Adamax[")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_adapter_modules_import_no_framework() -> None:
    code = textwrap.dedent(
        """
        import sys
        from adamax_spec.conformance.adapters import keras_adapter, optax_adapter, torch_optim
        for mod in (torch_optim, optax_adapter, keras_adapter):
            assert mod.adapter_for(object) is None and mod.adapter_for(len) is None
        loaded = {"torch", "jax", "optax", "tensorflow", "keras", "tf_keras"} & set(sys.modules)
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)



PROFILE_OF = {"torch": "torch", "optax": "optax", "keras3": "keras3", "tf_keras": "keras"}
#: float32: two subnormals and one more below the normal range, next to a normal value
TINY = np.array([-1.1050030124833526e-38, 1e-40, 3.0, -2e-39], np.float32)


def test_subnormal_inputs_reach_the_peer_unchanged(peer: tuple[str, object]) -> None:
    """Float32 subnormal weights and gradients are handed to the peer as they are (TensorFlow's
    ``tf.cast`` from float64 flushed them to zero, which the adapter then refused as a changed
    input), and the peer's dense steps are judged by the reference under its own profile."""
    from adamax_spec.reference.verdict import judge

    key, adapter = peer
    assert (np.abs(TINY[[0, 1, 3]]) < np.finfo(np.float32).smallest_normal).all()
    case = Case([TINY.astype(np.float64)], [[TINY[::-1].astype(np.float64)], [TINY.astype(np.float64)]],
                {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7})
    verdict = judge(case, adapter.run(case), PROFILE_OF[key])
    assert verdict.ok, verdict.failures[0].describe()


def _subnormal_duplicates() -> Case:
    values = np.stack([TINY, TINY]).astype(np.float64)
    return Case([np.zeros((3, 4))], [[SparseGrad(np.array([1, 1]), values, (3, 4))]],
                {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7})


@pytest.mark.parametrize("key", ["keras3", "tf_keras"])
def test_subnormal_sparse_values_reach_the_peer_unchanged(key: str) -> None:
    run = _adapter(key).run(_subnormal_duplicates())  # the adapter checks every value it hands over
    assert np.isfinite(run.params[0][0]).all()


@pytest.mark.parametrize("key", ["keras3", "tf_keras"])
def test_subnormal_duplicate_rows_are_judged_within_bound(key: str) -> None:
    """TensorFlow on CPU reads subnormal operands as zero when it sums duplicate rows (two
    -1.1e-38 give 0, not -2.2e-38): the duplicate-sum bound charges each subnormal addend and each
    flushed partial sum (error-model.md), so this correct peer passes."""
    from adamax_spec.reference.verdict import judge

    case = _subnormal_duplicates()
    verdict = judge(case, _adapter(key).run(case), PROFILE_OF[key])
    assert verdict.ok, verdict.failures[0].describe()


def test_torch_bfloat16_epsilon_is_a_bfloat16_scalar() -> None:
    """torch on CPU adds epsilon to a bfloat16 ``|g|`` as a bfloat16 scalar (``bfloat16(1e-3) =
    0.00099945``): ``|g| = 0.00105...`` gives ``u = 0.0020446...`` where a float32 epsilon gives
    ``0.0020599...``, 0.54 ULP from the exact sum, past the bound of the other interpretations.
    Found by the deep run of U-2 once it drew bfloat16."""
    from adamax_spec.reference.verdict import judge

    pytest.importorskip("torch")
    g = np.array([0.0010528564453125, 0.0019989013671875, -0.5, 1.0])  # bfloat16 values
    bf = np.asarray(_adapter("torch").run(Case([np.zeros(4)], [[g]], {"learning_rate": 0.01, "beta_1": 0.9,
                                                                        "beta_2": 0.99, "epsilon": 1e-3},
                                                 "bfloat16")).u[0][0])
    assert bf[0] == 0.002044677734375
    # step 2: a zero gradient, so u = beta_2 * u, where bfloat16(0.99) = 0.98828125 would show
    case = Case([np.zeros(4)], [[g], [np.zeros(4)]],
                {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-3}, "bfloat16")
    verdict = judge(case, _adapter("torch").run(case), "torch")
    assert verdict.ok and verdict.interpretation == "beta_2 in float32, epsilon in bfloat16, rest as passed"


def test_optax_low_precision_beta_2_and_epsilon_take_the_dtype() -> None:
    """JAX's weakly typed Python floats: optax's ``max(beta_2 * nu, |g| + eps)`` uses beta_2 and
    eps in the array's dtype (bfloat16 here), while its step size comes from beta_1 as passed (0.999
    would be 1.0 in bfloat16). One element of a failing deep-run case (U-2, seed 7): ``u`` at
    step 2 is 0.54 ULP from the other interpretations' values, 1.07 x their bound."""
    from adamax_spec.reference.verdict import judge

    pytest.importorskip("optax")
    case = Case([np.zeros(1)], [[np.array([0.103515625])], [np.array([-0.00262451171875])],
                                [np.array([-0.00421142578125])]],
                {"epsilon": 0.001, "beta_1": 0.999, "beta_2": 0.6002728736886462, "learning_rate": 0.5}, "bfloat16")
    verdict = judge(case, _adapter("optax").run(case), "optax")
    assert verdict.ok and verdict.interpretation == "beta_2 and epsilon in dtype, rest as passed"


K3_B1_FROM_DOUBLE = "float32 learning rate and bias-correction beta_1, 1 - beta_1 from the double, rest in dtype"


def test_keras3_bfloat16_moment_weight_comes_from_the_double(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras 3 multiplies ``g - m`` by the Python double ``1 - beta_1`` cast to the dtype, but forms
    ``beta_1 ** t`` from beta_1 cast to the dtype: in bfloat16, 0.999 is 1.0 there, so the step
    divides a nonzero ``m`` by 0 and ``w`` becomes +-inf (a deep-run failure, U-2 seed 9). The
    interpretation that rounds beta_1 itself predicts m = 0 and NaN; without the new one, no
    interpretation accepts what Keras 3 does."""
    from adamax_spec.reference import verdict as vd

    pytest.importorskip("keras")
    case = Case([np.array([1.0, 2.0])], [[np.array([1.0, -0.5])]],
                {"learning_rate": 0.001, "beta_1": 0.999, "beta_2": 0.9, "epsilon": 1e-7}, "bfloat16")
    traj = _adapter("keras3").run(case)
    assert list(traj.params[0][0]) == [-np.inf, np.inf]
    verdict = vd.judge(case, traj, "keras3")
    assert verdict.ok and verdict.interpretation == K3_B1_FROM_DOUBLE
    # the bound of w is infinite there (no relative bound on an infinite lr_t), yet a finite w is
    # no result of that interpretation: w - inf * m'/d is +-inf or NaN (and 5, -7 fit no other)
    finite = copy.deepcopy(traj)
    finite.params[0][0] = np.array([5.0, -7.0])
    assert not vd.judge(case, finite, "keras3").ok
    original = vd.interpretations
    monkeypatch.setattr(vd, "interpretations", lambda hyper, dtype: {
        k: v for k, v in original(hyper, dtype).items() if k != K3_B1_FROM_DOUBLE})
    assert not vd.judge(case, traj, "keras3").ok


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_our_keras3_profile_has_keras3_moments_bit_for_bit(dtype: str) -> None:
    """Our ``keras3`` profile forms the moment weight as Keras 3 does (the double ``1 - beta_1``
    cast to the dtype, ``beta_2`` cast straight to it): ``m`` and ``u`` equal Keras 3's (TensorFlow)
    in every bit over three steps. With ``1 - beta_1`` taken in the dtype (Keras 2.9's rule) ``m``
    differs: 0.00097656 against 0.0010004 per unit gradient in float16 at beta_1 = 0.999."""
    from adamax_spec.conformance.adapters.ours import OursTarget

    pytest.importorskip("keras")
    rng = np.random.default_rng(3)
    for b1, b2 in ((0.999, 0.9), (0.9, 0.999), (0.75, 0.6002728736886462)):
        def draw() -> np.ndarray:
            return rng.standard_normal(6).astype(dtype).astype(np.float64)

        case = Case([draw()], [[draw()] for _ in range(3)],
                    {"learning_rate": 0.01, "beta_1": b1, "beta_2": b2, "epsilon": 1e-3}, dtype)
        ours, peer = OursTarget("numpy", "keras3").run(case), _adapter("keras3").run(case)
        for q in ("m", "u"):
            for step, (a, b) in enumerate(zip(getattr(ours, q), getattr(peer, q), strict=True)):
                assert np.array_equal(a[0], b[0]), (b1, q, step, a[0], b[0])
