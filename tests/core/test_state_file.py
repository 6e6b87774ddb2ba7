"""State files: a safe format, refused when damaged or mismatched, atomic writes,
and restoring then continuing is bit-identical to never stopping."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from array_backends import Backend, installed, snapshot
from hypothesis import given
from hypothesis import strategies as st

from adamax_spec import Adamax, IndexedSlices, load_state, save_state, state_file
from adamax_spec.backends import host
from adamax_spec.schedules import ExponentialDecay

BACKENDS = installed("numpy", "torch", "array_api_strict")


def _arrays(backend, dtype, seed):
    """Two parameters and 6 steps of gradients (dense for one, sparse with duplicates for the other)
    in ``dtype``; on array-api-strict on a simulated non-default device: nothing may move off it."""
    rng = np.random.default_rng(seed)
    B = Backend(backend, "device1" if backend == "array_api_strict" else None)
    w0 = rng.standard_normal((5, 3)).astype(np.float32)
    v0 = rng.standard_normal(4).astype(np.float32)
    dense = [rng.standard_normal(4).astype(np.float32) for _ in range(6)]
    sparse = [(rng.standard_normal((3, 3)).astype(np.float32), np.array([1, 1, 4])) for _ in range(6)]
    grads = [[IndexedSlices(B.arr(vals, dtype), B.idx(idx), (5, 3)), B.arr(d, dtype)]
             for (vals, idx), d in zip(sparse, dense, strict=True)]
    return [B.arr(w0, dtype), B.arr(v0, dtype)], grads


def _make():
    return Adamax(ExponentialDecay(0.05, 3, 0.5), clipnorm=2.0)


def _step(opt, params, grads, in_place):
    if in_place:
        opt.apply_gradients(list(zip(grads, params, strict=True)))
        return params
    return opt.apply(params, grads)


def _restored(route, first, params, tmp_path):
    """A fresh optimizer holding ``first``'s state: through a state file, or in memory."""
    if route == "file":
        return load_state(save_state(tmp_path / "opt.state", first), params)  # built from the file's config
    saved = first.state_dict()
    resumed = Adamax.from_config(saved["config"])
    resumed.load_state_dict(saved)
    return resumed


DTYPES = {"numpy": ("float16", "float32", "float64"), "torch": ("float16", "bfloat16", "float32", "float64"),
          "array_api_strict": ("float32", "float64")}
RESTORES = [pytest.param(route, backend, dtype, in_place, id=f"{route}-{method}-{backend}-{dtype}")
            for route in ("file", "state_dict")
            for in_place, method in ((False, "apply"), (True, "apply_gradients"))
            for backend in BACKENDS if not in_place or Backend(backend).writeable
            for dtype in DTYPES[backend]]


@pytest.mark.parametrize("route,backend,dtype,in_place", RESTORES)
def test_restore_and_continue_is_bit_identical(route, backend, dtype, in_place, tmp_path):
    """Three steps, a save (a state file, or ``state_dict``), a restore into a fresh optimizer, three
    more steps: every bit of the params and moments, and the step count, as six steps without
    stopping; the moments come back in the parameters' library, dtype and device."""
    p1, grads = _arrays(backend, dtype, seed=7)
    p2, _ = _arrays(backend, dtype, seed=7)
    straight, first = _make(), _make()
    for g in grads:
        p1 = _step(straight, p1, g, in_place)
    for g in grads[:3]:
        p2 = _step(first, p2, g, in_place)
    resumed = _restored(route, first, p2, tmp_path)
    assert resumed is not first and resumed.iterations == 3
    for a, b in zip((*resumed.state.m, *resumed.state.u), p2 * 2, strict=True):
        assert type(a) is type(b) and a.dtype == b.dtype and str(host.dtype_name(a)) == host.dtype_name(b)
        if backend == "array_api_strict":
            assert a.device == b.device
    for g in grads[3:]:
        p2 = _step(resumed, p2, g, in_place)
    assert snapshot(resumed, p2) == snapshot(straight, p1)


def test_header_records_version_profile_config_iterations_and_arrays(tmp_path):
    w = np.ones((2, 3), np.float32)
    opt = Adamax(0.01, profile="torch", clipvalue=1.0)
    opt.apply_gradients([(np.full((2, 3), 0.5, np.float32), w)])
    header, payload = state_file.read_header(save_state(tmp_path / "s", opt))
    assert header["version"] == state_file.FORMAT_VERSION and header["profile"] == "torch"
    assert header["config"] == json.loads(json.dumps(opt.get_config())) and header["iterations"] == 1
    assert [(e["name"], e["dtype"], e["shape"]) for e in header["arrays"]] == [
        ("m[0]", "float32", [2, 3]), ("u[0]", "float32", [2, 3])]
    e = header["arrays"][1]
    assert e["sha256"] == hashlib.sha256(payload[e["offset"]:e["offset"] + e["nbytes"]]).hexdigest()


def test_optimizer_without_state_round_trips(tmp_path):
    opt = Adamax(0.3)
    back = load_state(save_state(tmp_path / "s", opt), [np.ones(2, np.float32)])
    assert back.state is None and back.get_config() == opt.get_config()


def test_loader_is_json_and_raw_bytes_only(tmp_path, monkeypatch):
    """Loading a state file unpickles nothing and runs no code: with pickle, ``np.load``,
    ``torch.load``, ``eval`` and ``exec`` made to fail, files of every backend (float32, and
    torch's bfloat16 words) still load bit for bit; and no branch of the loader names them."""
    src = Path(state_file.__file__).read_text() + Path(host.__file__).read_text()
    for word in ("import pickle", "pickle.load", "np.load", "eval(", "exec(", "allow_pickle", "torch.load"):
        assert word not in src
    saved = []
    for backend in BACKENDS:
        for dtype in ("float32", "bfloat16") if backend == "torch" else ("float32",):
            params, grads = _arrays(backend, dtype, seed=1)
            opt = _make()
            params = opt.apply(params, grads[0])
            saved.append((save_state(tmp_path / f"{backend}-{dtype}.state", opt), params, snapshot(opt, params)))

    def refuse(*args, **kwargs):
        raise AssertionError("loading a state file unpickled or executed code")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (np, "load"),
                         (builtins, "eval"), (builtins, "exec")):
        monkeypatch.setattr(module, name, refuse)
    if "torch" in BACKENDS:
        monkeypatch.setattr(sys.modules["torch"], "load", refuse)
    for path, params, want in saved:
        assert snapshot(load_state(path, params), params) == want


# -- refusals ------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    w = [np.ones((3, 2), np.float32), np.ones(4, np.float32)]
    opt = Adamax(0.01)
    opt.apply_gradients([(np.full((3, 2), 0.5, np.float32), w[0]), (np.full(4, -0.5, np.float32), w[1])])
    return save_state(tmp_path / "opt.state", opt), w


def _rewrite_header(path, change):
    """A well-formed file (valid checksums) whose header was edited: tests the semantic checks."""
    header, payload = state_file.read_header(path)
    change(header)
    raw = json.dumps(header).encode()
    body = state_file.MAGIC + payload + raw + struct.pack("<Q", len(raw))
    path.write_bytes(body + hashlib.sha256(body).digest() + state_file.END_MAGIC)


def _target():
    opt = Adamax(0.01)
    params = [np.ones((3, 2), np.float32), np.ones(4, np.float32)]
    opt.apply_gradients([(np.full((3, 2), 0.25, np.float32), params[0]), (np.full(4, 0.25, np.float32), params[1])])
    return opt, params


DAMAGE = [
    ("truncated-half", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated"),
    ("truncated-1-byte", lambda p: p.write_bytes(p.read_bytes()[:-1]), "truncated"),
    ("empty", lambda p: p.write_bytes(b""), "not an adamax_spec state file"),
    ("not-a-state-file", lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 100), "not an adamax_spec state file"),
    ("flipped-array-byte", lambda p: _flip(p, 10), "corrupted"),
    ("flipped-header-byte", lambda p: _flip(p, -60), "corrupted"),
    ("flipped-checksum-byte", lambda p: _flip(p, -20), "corrupted"),
    ("future-version", lambda p: _rewrite_header(p, lambda h: h.update(version=2)), "unsupported format version 2"),
    ("array-checksum", lambda p: _rewrite_header(p, lambda h: h["arrays"][0].update(sha256="0" * 64)),
     "'m[0]' is corrupted"),
    ("array-outside-file", lambda p: _rewrite_header(p, lambda h: h["arrays"][0].update(offset=10**6)),
     "outside the file"),
    ("negative-iterations", lambda p: _rewrite_header(p, lambda h: h.update(iterations=-1)), "negative"),
]


def _flip(path, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,words", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_damaged_file_is_refused_and_nothing_changes(saved, damage, words):
    path, _ = saved
    damage(path)
    opt, params = _target()
    before = snapshot(opt, params)
    with pytest.raises(ValueError) as info:
        load_state(path, params, opt)
    assert str(path) in str(info.value) and words in str(info.value), str(info.value)
    assert snapshot(opt, params) == before


MISMATCH = [
    ("other-profile", lambda: Adamax(0.01, profile="torch"), None, "profile 'keras'"),
    ("other-learning-rate", lambda: Adamax(0.02), None, "learning_rate=0.01"),
    ("other-clipnorm", lambda: Adamax(0.01, clipnorm=1.0), None, "clipnorm"),
    ("other-shape", None, lambda: [np.ones((2, 3), np.float32), np.ones(4, np.float32)], "float32(3, 2)"),
    ("other-dtype", None, lambda: [np.ones((3, 2), np.float64), np.ones(4, np.float64)], "params[0] is float64"),
    ("other-param-count", None, lambda: [np.ones((3, 2), np.float32)], "1 params"),
]


@pytest.mark.parametrize("make_opt,make_params,words", [m[1:] for m in MISMATCH], ids=[m[0] for m in MISMATCH])
def test_mismatched_file_is_refused_and_nothing_changes(saved, make_opt, make_params, words):
    path, _ = saved
    opt = make_opt() if make_opt else Adamax(0.01)
    params = make_params() if make_params else [np.ones((3, 2), np.float32), np.ones(4, np.float32)]
    before, raw = snapshot(opt, params), path.read_bytes()
    with pytest.raises(ValueError) as info:
        load_state(path, params, opt)
    assert str(path) in str(info.value) and words in str(info.value), str(info.value)
    assert snapshot(opt, params) == before and path.read_bytes() == raw


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_state(tmp_path / "nope", [np.ones(2, np.float32)])


# -- atomic writes ---------------------------------------------------------------------------
def test_failure_mid_write_leaves_the_previous_file(saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()
    opt, _ = _target()
    calls = []
    real = host.to_bytes

    def failing(x):
        calls.append(1)
        if len(calls) == 3:  # after two arrays were written to the temporary file
            raise OSError("disk full (injected)")
        return real(x)

    monkeypatch.setattr(host, "to_bytes", failing)
    with pytest.raises(OSError, match="injected"):
        save_state(path, opt)
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == [path.name]  # the temporary file was removed


def test_crash_mid_write_leaves_the_previous_file(saved):
    """A process killed mid-write (os._exit, no cleanup) cannot damage the file it was replacing."""
    path, _ = saved
    before = path.read_bytes()
    code = textwrap.dedent(f"""
        import os, numpy as np
        from adamax_spec import Adamax, save_state
        from adamax_spec.backends import host
        real, n = host.to_bytes, []
        def crash(x):
            n.append(1)
            if len(n) == 2:
                os._exit(9)
            return real(x)
        host.to_bytes = crash
        w = np.ones((3, 2), np.float32)
        opt = Adamax(0.5)
        opt.apply_gradients([(w, w)])
        save_state({str(path)!r}, opt)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr
    assert path.read_bytes() == before
    load_state(path, [np.ones((3, 2), np.float32), np.ones(4, np.float32)])  # still loads


# -- fuzz: random damage never gets past the loader ------------------------------------------
@given(st.data())
def test_fuzz_damaged_files_raise_value_error_and_change_nothing(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("fuzz")
    w = [np.ones((3, 2), np.float32)]
    src = Adamax(0.01)
    src.apply_gradients([(np.full((3, 2), 0.5, np.float32), w[0])])
    raw = bytearray(save_state(tmp / "s", src).read_bytes())
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    if kind == "flip":
        raw[at] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        del raw[at:]
    else:
        raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    (tmp / "s").write_bytes(bytes(raw))
    opt, params = Adamax(0.01), [np.ones((3, 2), np.float32)]
    opt.apply_gradients([(np.full((3, 2), 0.25, np.float32), params[0])])
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match="s: "):
        load_state(tmp / "s", params, opt)
    assert snapshot(opt, params) == before and (tmp / "s").read_bytes() == bytes(raw)
