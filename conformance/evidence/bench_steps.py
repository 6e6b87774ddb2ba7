"""The steps ``adamax-bench`` times: ours (kernels, optimizer object, generic path), the peers
and the naive array expressions, dense and lazy sparse; each builder returns ``(step, note)``
and raises :class:`Skip` when its library is missing."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np

from adamax_spec.backends import numpy_backend as nb

from .measure import F32, Step

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-7


def scalars() -> dict[str, Any]:
    lr_t = F32(LR) / (F32(1) - F32(B1))
    return {"lr_t": lr_t, "one_minus_b1": F32(1) - F32(B1), "b2": F32(B2), "eps": F32(EPS)}


def tensors(sizes: list[int], seed: int = 0) -> tuple[list[Any], ...]:
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal(n).astype(F32) for n in sizes]
    gs = [rng.standard_normal(n).astype(F32) for n in sizes]
    ms = [np.zeros(n, F32) for n in sizes]
    us = [np.zeros(n, F32) for n in sizes]
    return ws, gs, ms, us


def ours(sizes: list[int], threads: int, impl: str, plan: bool) -> tuple[Step, str]:
    if impl == "numba" and not nb.numba_available():
        raise Skip("numba is not installed")
    ws, gs, ms, us = tensors(sizes)
    kw = scalars()
    if len(sizes) == 1:
        w, g, m, u = ws[0], gs[0], ms[0], us[0]

        def one() -> None:
            nb.dense_step_inplace(w, g, m, u, **kw, threads=threads, impl=impl)

        return one, ""
    cached = nb.ManyPlan() if plan else None

    def many() -> None:
        nb.dense_step_many_inplace(ws, gs, ms, us, **kw, threads=threads, impl=impl,
                                   plan=cached)

    return many, "plan cached by the caller" if plan else "a new plan every step"


def naive(sizes: list[int]) -> tuple[Step, str]:
    ws, gs, ms, us = tensors(sizes)
    s = scalars()
    xp = np
    lr_t, omb1, b2, eps = (np.asarray(s[k]) for k in ("lr_t", "one_minus_b1", "b2", "eps"))

    def step() -> None:
        for i in range(len(ws)):
            w, g, m, u = ws[i], gs[i], ms[i], us[i]
            m = m + (g - m) * omb1
            dec = b2 * u
            mag = xp.abs(g)
            u = xp.where(dec < mag, mag, dec)
            ws[i], ms[i], us[i] = w - lr_t * (m / (u + eps)), m, u

    return step, "functional: new arrays every step"


def library_dense(sizes: list[int], fast: bool = True) -> tuple[Step, str]:
    try:
        from adamax_spec import Adamax
    except Exception as e:  # the library is being written; report, don't fail
        raise Skip(f"adamax_spec.Adamax not importable: {type(e).__name__}: {e}") from e
    ws, gs, _, _ = tensors(sizes)
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS, fast=fast)
    pairs = list(zip(gs, ws, strict=True))

    def step() -> None:
        opt.apply_gradients(pairs)

    return step, ("Adamax().apply_gradients on NumPy arrays (fast path)" if fast
                  else "generic array-API path, results written back")


def ours_torch(sizes: list[int], threads: int) -> tuple[Step, str]:
    torch = import_or_skip("torch")
    from adamax_spec import Adamax

    torch.set_num_threads(threads)
    ws, gs, _, _ = tensors(sizes)
    pairs = [(torch.from_numpy(g), torch.nn.Parameter(torch.from_numpy(w))) for g, w in zip(gs, ws, strict=True)]
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)

    def step() -> None:
        opt.apply_gradients(pairs)

    return step, "Adamax().apply_gradients on torch CPU Parameters (cached data pointers, numba kernel)"


def ours_jax(sizes: list[int]) -> tuple[Step, str]:
    jax = import_or_skip("jax")
    import jax.numpy as jnp

    from adamax_spec import Adamax, core
    from adamax_spec.backends import jax_backend

    ws, gs, _, _ = tensors(sizes)
    params = [jnp.asarray(w) for w in ws]
    grads = [jnp.asarray(g) for g in gs]
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    donating = jax_backend.make_step(opt.hyper)
    box: dict[str, Any] = {"params": params, "state": core.init(params)}

    def step() -> None:
        box["params"], box["state"] = donating(box["params"], box["state"], grads)
        jax.block_until_ready(box["params"])

    return step, f"jax {jax.__version__}: jax_backend.make_step (jit, params and moments donated)"


def torch_optim(sizes: list[int], threads: int, foreach: bool) -> tuple[Step, str]:
    torch = import_or_skip("torch")
    torch.set_num_threads(threads)
    ws, gs, _, _ = tensors(sizes)
    params = [torch.nn.Parameter(torch.from_numpy(w)) for w in ws]
    for p, g in zip(params, gs, strict=True):
        p.grad = torch.from_numpy(g)
    opt = torch.optim.Adamax(params, lr=LR, betas=(B1, B2), eps=EPS, foreach=foreach)
    return opt.step, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def optax_jit(sizes: list[int], threads: int) -> tuple[Step, str]:
    jax = import_or_skip("jax")
    optax = import_or_skip("optax")
    import jax.numpy as jnp

    ws, gs, _, _ = tensors(sizes)
    params = [jnp.asarray(w) for w in ws]
    grads = [jnp.asarray(g) for g in gs]
    opt = optax.adamax(LR, b1=B1, b2=B2, eps=EPS)
    state = [opt.init(params)]
    box = [params]

    def update(p: Any, s: Any, g: Any) -> Any:
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s

    jitted = jax.jit(update, donate_argnums=(0, 1))

    def step() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # "donated buffers were not usable"
            box[0], state[0] = jitted(box[0], state[0], grads)
        jax.block_until_ready(box[0])

    note = f"jax {jax.__version__}, XLA CPU threads: "
    note += "1 (XLA_FLAGS)" if threads == 1 else "XLA's own (all cores)"
    return step, note


class Skip(Exception):
    pass


def import_or_skip(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as e:
        raise Skip(f"{name} not importable: {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------------------------------
# sparse


def sparse_data(rows: int, dim: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(3)
    k = max(1, rows // 100)                       # index entries: 1% of the rows
    n_unique = k - k // 5                         # 20% of the entries repeat another one
    uniq = rng.choice(rows, size=n_unique, replace=False)
    indices = np.concatenate([uniq, rng.choice(uniq, size=k - n_unique)])
    rng.shuffle(indices)
    values = rng.standard_normal((k, dim)).astype(F32)
    return indices.astype(np.int64), values, np.unique(indices)


def gather_scatter(tables: list[Any], touched: Any, dim: int) -> tuple[Step, str]:
    buf = np.empty((touched.size, dim), F32)

    def step() -> None:
        for t in tables:
            np.take(t, touched, axis=0, out=buf)
            t[touched] = buf

    return step, f"{touched.size} unique rows of w, m, u: np.take + fancy assignment"


def sparse_kernel(tables: list[Any], indices: Any, values: Any, threads: int) -> tuple[Step, str]:
    w, m, u = tables
    kw = scalars()

    def step() -> None:
        rows, summed = nb.coalesce_rows_numpy(indices, values)
        nb.sparse_step_inplace(w, rows, summed, m, u, beta_1=F32(B1), threads=threads, **kw)

    return step, "coalesce_rows_numpy + sparse_step_inplace (rows updated where they lie)"


def library_dense_table(w: Any) -> tuple[Step, str]:
    from adamax_spec import Adamax

    g = np.zeros_like(w)
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)

    def step() -> None:
        opt.apply_gradients([(g, w)])

    return step, "the same table stepped with a dense gradient (fast path)"


def library_sparse(w: Any, indices: Any, values: Any, fast: bool = True) -> tuple[Step, str]:
    try:
        from adamax_spec import Adamax, IndexedSlices
    except Exception as e:
        raise Skip(f"adamax_spec.Adamax/IndexedSlices not importable: "
                    f"{type(e).__name__}: {e}") from e
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS, fast=fast)
    grad = IndexedSlices(values, indices, w.shape)

    def step() -> None:
        opt.apply_gradients([(grad, w)])

    return step, "keras profile: lazy, duplicates summed, rows written in place"

