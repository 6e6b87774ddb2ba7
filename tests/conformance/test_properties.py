"""The property table (``conformance/properties/``): ids are clause ids, the old ids still resolve."""

from __future__ import annotations

import re

import pytest

from adamax_spec.conformance.properties import DEPRECATED_IDS, IDS, PROPERTIES, by_id, resolve, resolve_all

OLD_TO_NEW = {
    "U-dense": "U-1", "U-dtypes": "U-2", "U-long": "U-3", "SP-sparse": "SP-1", "T-counter": "T-1",
    "S-none": "S-2", "C-clip": "C-1", "LR-schedule": "LR-1", "CK-checkpoint": "CK-1", "G-groups": "G-1",
    "N-nonfinite": "N-1", "I-inputs": "I-1", "D-dtype": "D-1",
}


def test_properties_run_in_the_order_they_always_did() -> None:
    assert IDS == ("U-1", "U-2", "U-3", "H-1", "SP-1", "T-1", "S-2", "C-1", "LR-1", "CK-1", "G-1", "N-1",
                   "INV-moments", "I-1", "D-1", "V-args")
    assert len(set(IDS)) == len(PROPERTIES)


@pytest.mark.parametrize("old,new", sorted(OLD_TO_NEW.items()))
def test_old_ids_resolve_to_their_clause_ids(old: str, new: str) -> None:
    assert resolve(old) == new and resolve(new) == new
    assert by_id(old) is by_id(new) and by_id(new).id == new


def test_the_alias_table_names_only_old_ids_of_existing_properties() -> None:
    assert DEPRECATED_IDS == OLD_TO_NEW
    assert not set(DEPRECATED_IDS) & set(IDS)
    assert set(DEPRECATED_IDS.values()) <= set(IDS)


def test_unknown_ids_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'U-9'"):
        resolve("U-9")
    with pytest.raises(ValueError, match="'nope'"):
        by_id("nope")
    with pytest.raises(ValueError, match=r"'u-dense', 'X'.*known: U-1, U-2"):  # ids are case-sensitive
        resolve_all(["U-dense", "u-dense", "X", "D-1"])
    assert resolve_all(["D-dtype", "U-1", "V-args"]) == ["D-1", "U-1", "V-args"]


EPS_INSIDE = """
import numpy as np

def step(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    m = beta_1 * m + (1 - beta_1) * g
    u = np.maximum(beta_2 * u, np.abs(g) + epsilon)  # torch's epsilon: fails profile keras (U-1)
    return w - (lr / (1 - beta_1 ** t)) * m / u, m, u
"""


def test_cli_only_and_xfails_take_old_ids(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The deprecated ids still select a property in ``--only`` and an ``--xfails`` file; the
    output names the clause id."""
    from adamax_spec.conformance import cli

    (tmp_path / "eps_inside_step.py").write_text(EPS_INSIDE)
    monkeypatch.syspath_prepend(str(tmp_path))
    xfails = tmp_path / "xfails"
    xfails.write_text("U-dense  # the old id of U-1\n")
    assert cli.main(["eps_inside_step:step", "--only", "I-inputs", "--only", "U-dense", "--examples", "2",
                     "--xfails", str(xfails)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"XFAIL +U-1 ", out) and re.search(r"PASS +I-1 ", out), out  # the xfail matched U-1
    assert "U-dense" not in out and "I-inputs" not in out
    assert cli.main(["adamax_spec", "--only", "U-denseX"]) == 2
    assert "'U-denseX'" in capsys.readouterr().err
