"""The validated functional form (``adamax_spec.functional``) and the shell over it (``Adamax``)."""

from __future__ import annotations

import numpy as np
import pytest

from adamax_spec import Adamax, IndexedSlices
from adamax_spec.functional import init, make_hyper, update


def _problem(dtype=np.float32):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal(4).astype(dtype)]
    steps = [[rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal(4).astype(dtype)] for _ in range(3)]
    steps[1][0] = IndexedSlices(rng.standard_normal((3, 3)).astype(dtype), np.array([4, 0, 4]), (5, 3))
    return params, steps


@pytest.mark.parametrize("fast", [True, False])
def test_update_is_the_step_adamax_takes(fast):
    """Three steps by update() give every bit Adamax.apply gives, and leave the inputs untouched."""
    params, steps = _problem()
    hyper = make_hyper(0.01, clipnorm=1.0)
    state, ps = init(params), [p.copy() for p in params]
    opt = Adamax(0.01, clipnorm=1.0, fast=fast)
    qs = [p.copy() for p in params]
    for grads in steps:
        before = [p.copy() for p in ps]
        ps, state = update(ps, grads, state, hyper, fast=fast)
        for a, b in zip(ps, before, strict=True):
            assert a is not b
        qs = opt.apply(qs, grads)
    assert state.iterations == opt.iterations == 3
    for a, b in zip([*ps, *state.m, *state.u], [*qs, *opt.state.m, *opt.state.u], strict=True):
        assert a.tobytes() == b.tobytes()


def test_update_in_place_writes_the_given_arrays():
    params, steps = _problem()
    state = init(params)
    ws = [p.copy() for p in params]
    new, state = update(ws, steps[1], state, make_hyper(0.01), in_place=True)
    assert not np.array_equal(ws[0], params[0])          # sparse rows written where they lie
    assert all(np.array_equal(a, b) for a, b in zip(new, ws, strict=True))
    np.testing.assert_array_equal(ws[0][[1, 2, 3]], params[0][[1, 2, 3]])


def test_bad_step_raises_and_changes_nothing():
    params, steps = _problem()
    state = init(params)
    hyper = make_hyper(0.01)
    m0 = [m.copy() for m in state.m]
    with pytest.raises(ValueError, match="grads must have one entry per parameter"):
        update(params, steps[0][:1], state, hyper)
    with pytest.raises(TypeError, match=r"grads\[1\] has dtype float64"):
        update(params, [steps[0][0], steps[0][1].astype(np.float64)], state, hyper)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(state.m, m0, strict=True))


@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({"learning_rate": -1.0}, ValueError, "learning_rate=-1.0"),
    ({"beta_1": 1.0}, ValueError, "beta_1=1.0"),
    ({"epsilon": 0.0}, ValueError, "epsilon=0.0"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, ValueError, "global_clipnorm"),
    ({"momentum": 0.9}, TypeError, "momentum"),
])
def test_make_hyper_names_the_bad_argument(kwargs, error, names):
    with pytest.raises(error, match=names):
        make_hyper(**kwargs)
    with pytest.raises(error, match=names):       # the shell raises the same
        Adamax(**kwargs)


def test_make_hyper_takes_the_profile_defaults():
    h = make_hyper(profile="torch")
    assert (h.learning_rate, h.beta_1, h.beta_2, h.epsilon) == (0.002, 0.9, 0.999, 1e-8)
    with pytest.warns(DeprecationWarning, match="lr"):
        assert make_hyper(lr=0.5).learning_rate == 0.5


def test_init_checks_the_parameters():
    with pytest.raises(TypeError, match=r"params\[1\] must be an array"):
        init([np.zeros(2), [1.0, 2.0]])
    s = init([np.zeros((2, 3), np.float16)])
    assert s.iterations == 0 and s.m[0].dtype == np.float16 and s.u[0].shape == (2, 3)
