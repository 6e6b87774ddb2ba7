"""Optimizer state files: a safe, checked, atomically written format (no pickle).

``save_state(path, opt)`` writes; ``load_state(path, params, opt=None)`` reads back into ``opt``
(or a new optimizer built from the file's config) with each moment in the namespace, on the
device and with the dtype of its parameter.  Restoring and continuing is bit-identical to never
stopping (clause CK-1).

Layout (format version 1)::

    b"ADAMAXST"                     8 bytes, magic
    array bytes                     m[0], ..., m[n-1], u[0], ..., u[n-1]; little-endian, C order
    header                          UTF-8 JSON, see below
    header length                   8 bytes, unsigned little-endian
    SHA-256 of everything above     32 bytes
    b"ADAMAXED"                     8 bytes, end magic (a truncated file lacks it)

The header records ``format``, ``version``, ``profile``, ``config`` (``Adamax.get_config()``),
``iterations`` and, per array, ``name``, ``dtype``, ``shape``, ``offset``, ``nbytes`` and
``sha256``.  Loading parses only JSON and raw numbers: nothing in a file can run code.
Every problem (truncated, corrupted, another version, another profile or hyperparameters than
the optimizer restored into, shapes or dtypes that do not fit the parameters) raises
``ValueError`` naming the file and what is wrong, before anything changes.

Writing goes to a temporary file in the same directory, is flushed and ``fsync``-ed, then
``os.replace``-d over the target: a crash at any point leaves the previous file intact.
Array bytes come from the module registered under the entry point ``host`` of the group
``adamax_spec.array_io`` (:mod:`adamax_spec.backends.host`), loaded when first needed; this
module names no array library and imports nothing from ``backends/`` by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .validation import check_sequences

if TYPE_CHECKING:
    from .optimizer import Adamax

__all__ = ["FORMAT_VERSION", "load_state", "save_state"]

FORMAT = "adamax_spec.state"
FORMAT_VERSION = 1
MAGIC = b"ADAMAXST"
END_MAGIC = b"ADAMAXED"
_TRAILER = 32 + len(END_MAGIC)  # SHA-256, end magic


def _host() -> Any:
    from importlib.metadata import entry_points

    found = entry_points(group="adamax_spec.array_io", name="host")
    if not found:
        raise RuntimeError("no 'host' entry point in group 'adamax_spec.array_io': reinstall adamax_spec")
    return next(iter(found)).load()


def _json_default(value: Any) -> Any:
    if hasattr(value, "__float__") and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"config value {value!r} ({type(value).__name__}) cannot be written to a state file")


def _config_json(config: dict[str, Any]) -> Any:
    """The config as JSON would give it back (tuples become lists, 0-d arrays floats)."""
    return json.loads(json.dumps(config, default=_json_default, allow_nan=False))


def save_state(path: str | os.PathLike[str], optimizer: Adamax) -> Path:
    """Write ``optimizer``'s config, step count and moments to ``path`` atomically; returns the path."""
    from .optimizer import Adamax

    if not isinstance(optimizer, Adamax):
        raise TypeError(f"optimizer must be an Adamax, got {type(optimizer).__name__}")
    path = Path(path)
    state = optimizer.state
    arrays = [] if state is None else [
        *((f"m[{i}]", a) for i, a in enumerate(state.m)), *((f"u[{i}]", a) for i, a in enumerate(state.u))
    ]
    try:
        config = _config_json(optimizer.get_config())
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: the optimizer's config cannot be saved: {e}") from e
    _atomic_write(path, _chunks(optimizer, config, arrays))
    return path


def _chunks(optimizer: Adamax, config: dict[str, Any], arrays: list[tuple[str, Any]]) -> Iterator[bytes]:
    host = _host()
    digest = hashlib.sha256()

    def out(b: bytes) -> bytes:
        digest.update(b)
        return b

    yield out(MAGIC)
    entries, offset = [], 0
    for name, a in arrays:
        data = host.to_bytes(a)
        entries.append({
            "name": name, "dtype": host.dtype_name(a), "shape": [int(d) for d in a.shape],
            "offset": offset, "nbytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        })
        offset += len(data)
        yield out(data)
    header = {
        "format": FORMAT, "version": FORMAT_VERSION, "profile": optimizer.profile.name,
        "config": config, "iterations": optimizer.iterations, "arrays": entries,
    }
    raw = json.dumps(header, sort_keys=True, allow_nan=False).encode()
    yield out(raw)
    yield out(struct.pack("<Q", len(raw)))
    yield digest.digest() + END_MAGIC


def _atomic_write(path: Path, chunks: Iterator[bytes]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """The checked header and the array bytes of a state file, or ``ValueError`` naming the file."""
    path = Path(path)
    data = path.read_bytes()

    def bad(why: str) -> ValueError:
        return ValueError(f"{path}: {why}")

    if len(data) < len(MAGIC) + 8 + _TRAILER or not data.startswith(MAGIC):
        raise bad("not an adamax_spec state file (no ADAMAXST magic), or truncated")
    if not data.endswith(END_MAGIC):
        raise bad("truncated state file (no end marker)")
    body, digest = data[:-_TRAILER], data[-_TRAILER:-len(END_MAGIC)]
    if hashlib.sha256(body).digest() != digest:
        raise bad("corrupted state file (SHA-256 of the contents does not match)")
    (n,) = struct.unpack("<Q", body[-8:])
    if n > len(body) - 8 - len(MAGIC):
        raise bad(f"corrupted state file (header length {n} exceeds the file)")
    payload, raw = body[len(MAGIC):len(body) - 8 - n], body[len(body) - 8 - n:len(body) - 8]
    try:
        header = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad(f"corrupted header ({err})") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise bad(f"not an adamax_spec state file (format={fmt!r})")
    if header.get("version") != FORMAT_VERSION:
        raise bad(f"unsupported format version {header.get('version')!r} (this library reads {FORMAT_VERSION})")
    for key, kind in (("profile", str), ("config", dict), ("iterations", int), ("arrays", list)):
        if not isinstance(header.get(key), kind) or isinstance(header.get(key), bool):
            raise bad(f"header field {key!r} is missing or not a {kind.__name__}")
    if header["iterations"] < 0:
        raise bad(f"iterations={header['iterations']} is negative")
    for j, e in enumerate(header["arrays"]):
        ok = isinstance(e, dict) and isinstance(e.get("dtype"), str) and isinstance(e.get("sha256"), str)
        ok = ok and isinstance(e.get("shape"), list) and all(type(d) is int and d >= 0 for d in e["shape"])
        ok = ok and all(type(e.get(k)) is int and e[k] >= 0 for k in ("offset", "nbytes"))
        if not ok:
            raise bad(f"array entry {j} of the header is malformed")
        if e["offset"] + e["nbytes"] > len(payload):
            raise bad(f"array {e.get('name', j)!r} lies outside the file")
        if hashlib.sha256(payload[e["offset"]:e["offset"] + e["nbytes"]]).hexdigest() != e["sha256"]:
            raise bad(f"array {e.get('name', j)!r} is corrupted (checksum mismatch)")
    return header, payload


_HYPER_KEYS = ("learning_rate", "beta_1", "beta_2", "epsilon", "decay", "clipnorm", "clipvalue", "global_clipnorm")


def load_state(
    path: str | os.PathLike[str], params: Sequence[Any], optimizer: Adamax | None = None
) -> Adamax:
    """Restore a state file for ``params`` into ``optimizer`` (or a new one built from the file).

    ``optimizer``'s profile and hyperparameters must be those saved (a plain callable learning
    rate is not compared).  Moments come back in each parameter's namespace, device and dtype.
    Raises ``ValueError`` naming the file and the mismatch; nothing changes then.
    """
    from .optimizer import Adamax

    path = Path(path)
    params, _ = check_sequences(params, [])
    header, payload = read_header(path)

    def bad(why: str) -> ValueError:
        return ValueError(f"{path}: {why}")

    config = header["config"]
    if config.get("profile", header["profile"]) != header["profile"]:
        raise bad(f"header profile {header['profile']!r} disagrees with config profile {config.get('profile')!r}")
    if optimizer is None:
        try:
            optimizer = Adamax.from_config(config)
        except (TypeError, ValueError) as err:
            raise bad(f"the saved config does not build an optimizer: {err}") from err
    elif not isinstance(optimizer, Adamax):
        raise TypeError(f"optimizer must be an Adamax, got {type(optimizer).__name__}")
    else:
        if optimizer.profile.name != header["profile"]:
            raise bad(f"saved under profile {header['profile']!r}, but the optimizer uses {optimizer.profile.name!r}")
        ours = _config_json(optimizer.get_config())
        lr = optimizer.learning_rate
        skip = {"learning_rate"} if callable(lr) and not hasattr(lr, "get_config") else set()
        for k in _HYPER_KEYS:
            if k not in skip and ours.get(k) != config.get(k):
                raise bad(f"saved {k}={config.get(k)!r}, but the optimizer has {k}={ours.get(k)!r}")
    entries = header["arrays"]
    if entries and len(entries) != 2 * len(params):
        raise bad(f"holds moments for {len(entries) // 2} parameters, but {len(params)} params were given")
    host = _host()
    arrays = []
    for j, e in enumerate(entries):
        i = j % len(params)
        w = params[i]
        if not hasattr(w, "shape") or not hasattr(w, "dtype"):
            raise TypeError(f"params[{i}] must be an array, got {type(w).__name__}")
        want_name = f"{'mu'[j // len(params)]}[{i}]"
        if e.get("name") != want_name:
            raise bad(f"array {j} is {e.get('name')!r}, expected {want_name!r}")
        if e["dtype"] != host.dtype_name(w) or tuple(e["shape"]) != tuple(w.shape):
            raise bad(
                f"{want_name} was saved as {e['dtype']}{tuple(e['shape'])}, "
                f"but params[{i}] is {host.dtype_name(w)}{tuple(w.shape)}"
            )
        size = math.prod(e["shape"]) * _itemsize(e["dtype"])
        if e["nbytes"] != size:
            raise bad(f"{want_name} has {e['nbytes']} bytes, expected {size} for {e['dtype']}{tuple(e['shape'])}")
        arrays.append(host.from_bytes(payload[e["offset"]:e["offset"] + e["nbytes"]], e["dtype"], tuple(e["shape"]), w))
    n = len(arrays) // 2
    optimizer.load_state_dict({
        "config": config, "iterations": header["iterations"], "m": arrays[:n], "u": arrays[n:],
    })
    return optimizer


def _itemsize(dtype: str) -> int:
    sizes = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
    if dtype not in sizes:
        raise ValueError(f"unsupported dtype {dtype!r} in a state file")
    return sizes[dtype]
