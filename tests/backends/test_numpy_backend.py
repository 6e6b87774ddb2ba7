"""The in-place NumPy fast path is bit-identical to the plain NumPy expression.

Every bit of ``w``, ``m`` and ``u`` (NaN payloads and signed zeros included) is
compared with the dense step evaluated on plain NumPy arrays of dtype ``D``, for
both implementations (numba, blocked NumPy), every epsilon placement and NaN rule,
float16/32/64, odd sizes, and non-finite values.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adamax_spec.backends import numpy_backend as nb

DTYPES = [np.float16, np.float32, np.float64]
EPSILONS = ["outside", "inside", "inside_decay", "none"]
NAN_RULES = ["keep_decayed", "propagate"]
# the three combinations of the named profiles first (keras, keras3, torch/optax)
MODES = [("outside", "keep_decayed"), ("outside", "propagate"), ("inside", "propagate")] + [
    (e, n) for e in EPSILONS for n in NAN_RULES
    if (e, n) not in {("outside", "keep_decayed"), ("outside", "propagate"), ("inside", "propagate")}
]
IMPLS = ["numba", "numpy"]
ODD_SIZES = [0, 1, 7, 32769, 100003]
SPECIALS = [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-8, -1e-8, 5e-324, 1e300, -3.0]


def _needs_numba(impl: str) -> None:
    if impl == "numba" and not nb.numba_available():
        pytest.skip("numba is not installed")


def reference(w, g, m, u, lr_t, omb1, b2, eps, epsilon, nan_in_max):
    """The dense step on plain NumPy arrays of dtype D, one rounding per operation."""
    d = w.dtype
    lr_t, omb1, b2, eps = (np.asarray(x, dtype=d) for x in (lr_t, omb1, b2, eps))
    with np.errstate(all="ignore"):
        m_new = m + (g - m) * omb1
        dec = b2 * u
        mag = np.abs(g)
        if epsilon == "inside":
            mag = mag + eps
        elif epsilon == "inside_decay":
            dec = dec + eps
        if nan_in_max == "keep_decayed":
            u_new = np.where(dec < mag, mag, dec)
        else:
            u_new = np.maximum(dec, mag)
        den = u_new + eps if epsilon == "outside" else u_new
        w_new = w - lr_t * (m_new / den)
    return w_new, m_new, u_new


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"u{a.dtype.itemsize}")


def assert_bits_equal(name: str, got: np.ndarray, want: np.ndarray, *, nan_bits: bool = False) -> None:
    """Every bit equal, except the sign and payload of a NaN unless ``nan_bits``.

    IEEE 754 (6.2.3) defines which NaN comes out of an operation with one NaN operand, but
    not with two; and ``|x|`` clears the sign of a NaN, so a single NaN input reaches ``w``
    through both ``m`` (signed) and ``u`` (unsigned) and ``m / u`` meets two NaNs.  NumPy's
    answer there depends on its inner loop (operand order, SIMD body or tail).  Where the
    expected value is NaN the result must be NaN; everywhere else (signed zeros and
    infinities included) the bits must be equal.
    """
    assert got.dtype == want.dtype and got.shape == want.shape
    differ = bits(got).ravel() != bits(want).ravel()
    if not nan_bits:
        differ &= ~(np.isnan(got.ravel()) & np.isnan(want.ravel()))
    bad = np.flatnonzero(differ)
    assert bad.size == 0, (
        f"{name}: {bad.size} elements differ, first at {bad[:5].tolist()}: "
        f"got {got.ravel()[bad[:3]].tolist()} want {want.ravel()[bad[:3]].tolist()}"
    )


def test_assert_bits_equal_tells_what_is_defined():
    nan, neg_nan = np.float32(np.nan), -np.float32(np.nan)
    assert_bits_equal("two NaNs", np.array([nan, 1.0], np.float32), np.array([neg_nan, 1.0], np.float32))
    with pytest.raises(AssertionError):
        assert_bits_equal("NaN bits", np.array([nan], np.float32), np.array([neg_nan], np.float32), nan_bits=True)
    with pytest.raises(AssertionError):   # NaN where a number is due
        assert_bits_equal("NaN vs 1", np.array([nan, 1.0], np.float32), np.array([1.0, 1.0], np.float32))
    with pytest.raises(AssertionError):   # signed zeros stay distinct
        assert_bits_equal("-0 vs +0", np.array([-0.0], np.float32), np.array([0.0], np.float32))


def make_state(rng: np.random.Generator, n: int, dtype, specials=(), scale: float = 1.0):
    """w, g, m, u with n elements; ``specials`` are (array, position, value) triples."""
    with np.errstate(all="ignore"):
        w = rng.standard_normal(n).astype(dtype)
        g = (rng.standard_normal(n) * scale).astype(dtype)
        m = (rng.standard_normal(n) * scale * 0.5).astype(dtype)
        u = np.abs(rng.standard_normal(n) * scale).astype(dtype)
        arrays = {"w": w, "g": g, "m": m, "u": u}
        for which, pos, value in specials:
            if n:
                arrays[which][pos % n] = value
    return w, g, m, u


def run_step(impl, epsilon, nan_in_max, w, g, m, u, scalars, **kw):
    lr_t, omb1, b2, eps = scalars
    nb.dense_step_inplace(w, g, m, u, lr_t=lr_t, one_minus_b1=omb1, b2=b2, eps=eps,
                          epsilon=epsilon, nan_in_max=nan_in_max, impl=impl, **kw)


def check_one(impl, dtype, epsilon, nan_in_max, w, g, m, u, scalars, **kw):
    want = reference(w, g, m, u, *scalars, epsilon, nan_in_max)
    g_before = g.copy()
    g.flags.writeable = False          # g is only read
    run_step(impl, epsilon, nan_in_max, w, g, m, u, scalars, **kw)
    assert_bits_equal("g (unmodified)", g, g_before, nan_bits=True)
    for name, got, exp in zip("wmu", (w, m, u), want, strict=True):
        assert_bits_equal(name, got, exp)


def scalars_for(dtype, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7, t=1):
    d = np.dtype(dtype).type
    lr_t = d(lr) / (d(1) - d(b1) ** d(t))
    return (lr_t, d(1) - d(b1), d(b2), d(eps))


# --------------------------------------------------------------------------------------
# one tensor


# numba has no float16: float16 always takes the NumPy path (test_float16_falls_back)
IMPL_DTYPES = [(i, d) for i in IMPLS for d in DTYPES if (i, d) != ("numba", np.float16)]


@pytest.mark.parametrize(("impl", "dtype"), IMPL_DTYPES,
                         ids=[f"{i}-{np.dtype(d).name}" for i, d in IMPL_DTYPES])
@pytest.mark.parametrize(("epsilon", "nan_in_max"), MODES, ids=lambda x: x)
@pytest.mark.parametrize("n", [*ODD_SIZES, 3 * nb.CHUNK + 5])
def test_dense_odd_sizes_bit_identical(impl, dtype, epsilon, nan_in_max, n):
    _needs_numba(impl)
    rng = np.random.default_rng(n)
    specials = [("g", i * 7919, v) for i, v in enumerate(SPECIALS)]
    specials += [("u", 3, -0.0), ("u", 11, 0.0), ("m", 5, np.nan), ("u", 13, np.inf)]
    w, g, m, u = make_state(rng, n, dtype, specials)
    for step in range(1, 3):          # the second step starts from the first one's state
        check_one(impl, dtype, epsilon, nan_in_max, w, g, m, u, scalars_for(dtype, t=step))
        g = g.copy()


@st.composite
def cases(draw):
    n = draw(st.one_of(st.integers(0, 70), st.sampled_from(ODD_SIZES)))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1.0, 1e-7, 1e-4, 1e4]))     # |g| near eps tells placements apart
    specials = draw(st.lists(
        st.tuples(st.sampled_from("wgmu"), st.integers(0, 10**6), st.sampled_from(SPECIALS)),
        max_size=8))
    lr = draw(st.sampled_from([1e-3, 0.5, 0.0, 1e-30]))
    b1 = draw(st.sampled_from([0.9, 0.0, 0.999, 0.5]))
    b2 = draw(st.sampled_from([0.999, 0.0, 0.9, 1.0 - 2**-20]))
    eps = draw(st.sampled_from([1e-7, 1e-8, 0.0, 1e-3]))
    t = draw(st.integers(1, 3000))
    return n, seed, scale, specials, (lr, b1, b2, eps, t)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("epsilon", "nan_in_max"), MODES, ids=lambda x: x)
@settings(max_examples=12)
@given(case=cases())
def test_dense_hypothesis_bit_identical(impl, dtype, epsilon, nan_in_max, case):
    _needs_numba(impl)
    if impl == "numba" and dtype == np.float16:
        impl = "auto"
    n, seed, scale, specials, (lr, b1, b2, eps, t) = case
    w, g, m, u = make_state(np.random.default_rng(seed), n, dtype, specials, scale)
    with np.errstate(all="ignore"):
        scalars = scalars_for(dtype, lr, b1, b2, eps, t)
    check_one(impl, dtype, epsilon, nan_in_max, w, g, m, u, scalars)


@pytest.mark.parametrize("threads", [1, 2, None])
def test_dense_threads(threads):
    _needs_numba("numba")
    w, g, m, u = make_state(np.random.default_rng(5), 5 * nb.CHUNK + 3, np.float32)
    check_one("numba", np.float32, "outside", "keep_decayed", w, g, m, u,
              scalars_for(np.float32), threads=threads)


def test_multidimensional_arrays():
    for impl in ["auto", "numpy"]:
        w, g, m, u = (a.reshape(37, 3, 11) for a in make_state(
            np.random.default_rng(1), 37 * 33, np.float64))
        check_one(impl, np.float64, "outside", "keep_decayed", w, g, m, u,
                  scalars_for(np.float64))


def test_float16_falls_back():
    assert nb.select_impl(np.float16) == "numpy"
    assert nb.select_impl(np.float16, "numpy") == "numpy"
    if nb.numba_available():
        assert nb.select_impl(np.float32) == "numba"
        with pytest.raises(nb.UnsupportedArrays, match="float16"):
            nb.select_impl(np.float16, "numba")
        w, g, m, u = make_state(np.random.default_rng(0), 10, np.float16)
        with pytest.raises(nb.UnsupportedArrays, match="float16"):
            run_step("numba", "outside", "keep_decayed", w, g, m, u, scalars_for(np.float16))
    w, g, m, u = make_state(np.random.default_rng(0), 100003, np.float16,
                            [("g", 1, np.nan), ("g", 2, -0.0), ("g", 3, 6e-8)])
    check_one("auto", np.float16, "outside", "keep_decayed", w, g, m, u, scalars_for(np.float16))


def test_python_scalars_are_rounded_to_dtype():
    w, g, m, u = make_state(np.random.default_rng(3), 1000, np.float32)
    want = reference(w, g, m, u, 1e-3 / 0.1, 0.1, 0.999, 1e-7, "outside", "keep_decayed")
    nb.dense_step_inplace(w, g, m, u, lr_t=1e-3 / 0.1, one_minus_b1=0.1, b2=0.999, eps=1e-7)
    for name, got, exp in zip("wmu", (w, m, u), want, strict=True):
        assert_bits_equal(name, got, exp)


def test_fallback_allocates_only_blocks():
    """The NumPy fallback's temporaries are block-sized, not parameter-sized."""
    n = 2_000_000
    w, g, m, u = make_state(np.random.default_rng(0), n, np.float32)
    run_step("numpy", "outside", "keep_decayed", w, g, m, u, scalars_for(np.float32))  # warm
    tracemalloc.start()
    try:
        run_step("numpy", "outside", "keep_decayed", w, g, m, u, scalars_for(np.float32))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * nb.BLOCK * 4 + 64 * 1024, peak      # a handful of 128 KiB blocks
    assert peak < w.nbytes / 10


# --------------------------------------------------------------------------------------
# many tensors


@st.composite
def many_cases(draw):
    sizes = draw(st.lists(st.one_of(st.integers(0, 40), st.integers(0, 5000),
                                    st.sampled_from(ODD_SIZES[:4])), max_size=12))
    chunk = draw(st.sampled_from([7, 1000, 4096, nb.CHUNK]))
    seed = draw(st.integers(0, 2**32 - 1))
    specials = draw(st.lists(
        st.tuples(st.sampled_from("gmu"), st.integers(0, 10**6), st.sampled_from(SPECIALS)),
        max_size=6))
    threads = draw(st.sampled_from([None, 1, 2]))
    return sizes, chunk, seed, specials, threads


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("epsilon", "nan_in_max"), MODES[:3], ids=lambda x: x)
@settings(max_examples=10)
@given(case=many_cases())
def test_many_bit_identical(impl, dtype, epsilon, nan_in_max, case):
    _needs_numba(impl)
    if impl == "numba" and dtype == np.float16:
        impl = "auto"
    sizes, chunk, seed, specials, threads = case
    rng = np.random.default_rng(seed)
    tensors = [make_state(rng, n, dtype, specials) for n in sizes]
    ws, gs, ms, us = (list(x) for x in zip(*tensors, strict=True)) if tensors else ([],) * 4
    plan = nb.ManyPlan(chunk=chunk)
    for step in (1, 2, 3):
        want = [reference(*t, *scalars_for(dtype, t=step), epsilon, nan_in_max)
                for t in zip(ws, gs, ms, us, strict=True)]
        g_before = [g.copy() for g in gs]
        lr_t, omb1, b2, eps = scalars_for(dtype, t=step)
        nb.dense_step_many_inplace(ws, gs, ms, us, lr_t=lr_t, one_minus_b1=omb1, b2=b2,
                                   eps=eps, epsilon=epsilon, nan_in_max=nan_in_max,
                                   impl=impl, threads=threads, plan=plan)
        for i, exp in enumerate(want):
            assert_bits_equal(f"gs[{i}] (unmodified)", gs[i], g_before[i])
            for name, got, e in zip("wmu", (ws[i], ms[i], us[i]), exp, strict=True):
                assert_bits_equal(f"{name}s[{i}]", got, e)
        if step == 2:                  # fresh gradient arrays, same plan
            gs = [g.copy() for g in gs]


def test_many_large_and_small_mixed():
    _needs_numba("numba")
    rng = np.random.default_rng(9)
    sizes = [3 * nb.CHUNK + 11, 1, 0, 100003, 7, 32769] + [int(s) for s in rng.integers(0, 3000, 50)]
    for impl in IMPLS:
        tensors = [make_state(rng, n, np.float32, [("g", 2, np.nan)]) for n in sizes]
        ws, gs, ms, us = (list(x) for x in zip(*tensors, strict=True))
        want = [reference(*t, *scalars_for(np.float32), "outside", "keep_decayed")
                for t in zip(ws, gs, ms, us, strict=True)]
        lr_t, omb1, b2, eps = scalars_for(np.float32)
        nb.dense_step_many_inplace(ws, gs, ms, us, lr_t=lr_t, one_minus_b1=omb1, b2=b2,
                                   eps=eps, impl=impl)
        for i, exp in enumerate(want):
            for name, got, e in zip("wmu", (ws[i], ms[i], us[i]), exp, strict=True):
                assert_bits_equal(f"{impl} {name}s[{i}]", got, e)


def test_plan_table_covers_every_element_once():
    plan = nb.ManyPlan(chunk=1000)
    sizes = [0, 1, 999, 1000, 1001, 2500, 0, 3]
    plan._build_table(sizes)
    covered = [np.zeros(n, int) for n in sizes]
    for t, s, e in plan.spans:
        assert s < e
        covered[t][s:e] += 1
    assert all((c == 1).all() for c in covered)
    per_unit = [plan.spans[a:b, 2].sum() - plan.spans[a:b, 1].sum()
                for a, b in zip(plan.units[:-1], plan.units[1:], strict=True)]
    assert all(x == 1000 for x in per_unit[:-1]) and 0 < per_unit[-1] <= 1000


# --------------------------------------------------------------------------------------
# what the fast path refuses (the caller then uses the generic path)

KW = {"lr_t": 1e-3, "one_minus_b1": 0.1, "b2": 0.999, "eps": 1e-7}


def _fresh(n=64, dtype=np.float32):
    return list(make_state(np.random.default_rng(0), n, dtype))


@pytest.mark.parametrize("impl", ["auto", "numpy"])
@pytest.mark.parametrize("which", range(4), ids=list("wgmu"))
def test_refusals_name_the_argument(impl, which):
    name = "wgmu"[which]
    other = "g" if name == "w" else name     # a w of another dtype/shape: g is then "wrong"
    cases = {
        "is not C-contiguous": (name, lambda a: np.repeat(a, 2)[::2]),
        "has dtype": (other, lambda a: a.astype(np.float64)),
        "has shape": (other, lambda a: a[:-1].copy()),
        "must be a numpy.ndarray": (name, lambda a: a.tolist()),
        "is not aligned": (name, lambda a: np.frombuffer(b"\0" + a.tobytes(), a.dtype, a.size, 1)),
    }
    if name != "g":
        cases["is not writable"] = (name, lambda a: np.frombuffer(a.tobytes(), a.dtype))
    for what, (named, spoil) in cases.items():
        args = _fresh()
        snapshot = [a.copy() for a in args]
        args[which] = spoil(args[which])
        if what == "is not aligned" and args[which].flags.aligned:
            continue                    # this platform aligns everything
        with pytest.raises(nb.UnsupportedArrays, match=f"^{named} {what}") as info:
            nb.dense_step_inplace(*args, **KW, impl=impl)
        assert isinstance(info.value, ValueError)
        for i, (a, s) in enumerate(zip(args, snapshot, strict=True)):   # nothing changed
            if i != which:
                assert_bits_equal("wgmu"[i], a, s)


def test_read_only_g_is_accepted_and_untouched():
    w, g, m, u = _fresh()
    g = np.frombuffer(g.tobytes(), np.float32)
    assert not g.flags.writeable
    check_one("auto", np.float32, "outside", "keep_decayed", w, g, m, u, scalars_for(np.float32))


def test_overlaps_and_scalars_refused():
    w, g, m, u = _fresh()
    with pytest.raises(nb.UnsupportedArrays, match="w and m overlap"):
        nb.dense_step_inplace(w, g, w, u, **KW)
    with pytest.raises(nb.UnsupportedArrays, match="w and g overlap"):
        nb.dense_step_inplace(w, w, m, u, **KW)
    with pytest.raises(nb.UnsupportedArrays, match="lr_t has dtype float64"):
        nb.dense_step_inplace(w, g, m, u, **{**KW, "lr_t": np.float64(1e-3)})
    with pytest.raises(nb.UnsupportedArrays, match="eps must be"):
        nb.dense_step_inplace(w, g, m, u, **{**KW, "eps": "1e-7"})
    with pytest.raises(nb.UnsupportedArrays, match="b2 must be a scalar"):
        nb.dense_step_inplace(w, g, m, u, **{**KW, "b2": np.zeros(2, np.float32)})
    with pytest.raises(nb.UnsupportedArrays, match="w has dtype int64"):
        nb.dense_step_inplace(*(np.zeros(3, np.int64),) * 4, **KW)
    with pytest.raises(ValueError, match="epsilon must be"):
        nb.dense_step_inplace(w, g, m, u, **KW, epsilon="between")
    with pytest.raises(ValueError, match="nan_in_max must be"):
        nb.dense_step_inplace(w, g, m, u, **KW, nan_in_max="ignore")
    with pytest.raises(ValueError, match="impl must be"):
        nb.dense_step_inplace(w, g, m, u, **KW, impl="cuda")
    with pytest.raises(ValueError, match="threads must be"):
        nb.dense_step_inplace(w, g, m, u, **KW, threads=0)
    with pytest.raises(nb.UnsupportedArrays, match=r"w must be a numpy\.ndarray"):
        nb.dense_step_inplace(np.ma.masked_array(w), g, m, u, **KW)


def _overlap_w0_m3(lists):
    buf = np.zeros(40, np.float32)
    lists[0][0] = buf[:10]
    lists[2][3] = buf[5:18]


@pytest.mark.parametrize("impl", ["auto", "numpy"])
def test_many_refusals_name_the_argument(impl):
    def fresh_lists(k=4):
        tensors = [make_state(np.random.default_rng(i), 10 + i, np.float32) for i in range(k)]
        return [list(x) for x in zip(*tensors, strict=True)]

    plan = nb.ManyPlan()
    ws, gs, ms, us = fresh_lists()
    nb.dense_step_many_inplace(ws, gs, ms, us, **KW, impl=impl, plan=plan)   # fills the cache
    bad = {
        "gs[2] is not C-contiguous": lambda L: L[1].__setitem__(2, np.repeat(L[1][2], 2)[::2]),
        "ms[1] is not writable": lambda L: L[2].__setitem__(
            1, np.frombuffer(L[2][1].tobytes(), np.float32)),
        "us[3] has dtype float64": lambda L: L[3].__setitem__(3, L[3][3].astype(np.float64)),
        "gs[0] has shape": lambda L: L[1].__setitem__(0, L[1][0][:-1].copy()),
        "ws[1] has dtype float64": lambda L: L[0].__setitem__(1, L[0][1].astype(np.float64)),
        "us has 3 arrays": lambda L: L[3].pop(),
        "ms[2] and us[2] overlap": lambda L: L[3].__setitem__(2, L[2][2]),
        "ws[0] and ms[3] overlap": _overlap_w0_m3,
    }
    for message, spoil in bad.items():
        lists = [list(x) for x in (ws, gs, ms, us)]
        spoil(lists)
        before = [[a.copy() for a in x] for x in (ws, gs, ms, us)]
        with pytest.raises(nb.UnsupportedArrays, match=message.replace("[", r"\[")):
            nb.dense_step_many_inplace(*lists, **KW, impl=impl, plan=plan)
        for x, y in zip((ws, gs, ms, us), before, strict=True):     # nothing changed
            for a, b in zip(x, y, strict=True):
                assert_bits_equal("untouched", a, b)
        # the plan still works with the good lists afterwards
        nb.dense_step_many_inplace(ws, gs, ms, us, **KW, impl=impl, plan=plan)
    with pytest.raises(nb.UnsupportedArrays, match="gs has 1 arrays, ws has 0"):
        nb.dense_step_many_inplace([], [gs[0]], [], [], **KW)
    nb.dense_step_many_inplace([], [], [], [], **KW)                # nothing to do


def test_numba_kernels_are_strict_ieee():
    """fastmath off (no FMA contraction, no reassociation), numpy error model."""
    _needs_numba("numba")
    kernels = nb.kernel_names()
    assert {"dense_serial", "dense_parallel", "many_serial", "many_parallel"} <= set(kernels)
    for name, k in kernels.items():
        assert not k.targetoptions.get("fastmath"), name
        assert k.targetoptions.get("error_model") == "numpy", name


# -- coalescing duplicate sparse rows ---------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_coalesce_rows_numpy_has_the_generic_bits(impl):
    """Same rows and every bit of the sums as adamax_spec.sparse.coalesce_rows: 3+ duplicates,
    NaN (either sign), inf, -0.0, every float dtype, index dtypes, empty and 1-d values."""
    _needs_numba(impl)
    from adamax_spec.sparse import coalesce_rows

    rng = np.random.default_rng(11)
    specials = [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 65504.0, -65504.0]
    for case in range(300):
        dt = DTYPES[case % 3]
        k, n = int(rng.integers(0, 50)), int(rng.integers(1, 9))
        rest = [(), (3,), (2, 2), (1,), (0,)][case % 5]
        idx = rng.integers(0, n, size=k).astype([np.int64, np.int32, np.uint8][case % 3])
        v = rng.standard_normal((k, *rest)).astype(dt)
        if v.size and case % 2:
            flat = v.reshape(-1)
            at = rng.integers(0, flat.size, size=max(1, flat.size // 3))
            flat[at] = rng.choice(np.array(specials, dt), size=at.size)
        with np.errstate(all="ignore"):
            want_rows, want = coalesce_rows(idx, v)
        rows, got = nb.coalesce_rows_numpy(idx, v, impl=impl)
        assert rows.dtype == want_rows.dtype and np.array_equal(rows, want_rows), case
        assert_bits_equal(f"case {case}", got, want)


def test_coalesce_rows_numpy_refuses_what_it_cannot_sum():
    with pytest.raises(nb.UnsupportedArrays):
        nb.coalesce_rows_numpy(np.zeros((2, 1), np.int64), np.zeros((2, 3), np.float32))
    with pytest.raises(nb.UnsupportedArrays):
        nb.coalesce_rows_numpy(np.zeros(2, np.int64), np.zeros((2, 3), np.int32))
