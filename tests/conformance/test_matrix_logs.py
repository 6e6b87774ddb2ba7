"""The main job's progress lines stay readable: a target's standard error goes to its log."""

from __future__ import annotations

import os

from adamax_spec.conformance.matrix import run_cells
from adamax_spec.conformance.targets import load_target, stem


class _Noisy:
    """Our implementation, writing to file descriptor 2 the way a framework's C++ logging does."""

    def __init__(self, profile: str) -> None:
        os.write(2, b"I0000 NOISE-AT-LOAD oneDNN custom operations are on\n")
        self._inner = load_target("adamax_spec", "numpy", profile)
        self.name, self.capabilities = "noisy", self._inner.capabilities

    def run(self, case):
        os.write(2, b"E0000 NOISE-AT-RUN failed call to cuInit\n")
        return self._inner.run(case)


def test_target_stderr_goes_to_its_log_not_between_progress_lines(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # whatever the environment sets
    cells = run_cells([("noisy target", _Noisy)], tmp_path, examples=1, seed=0)
    out, err = capfd.readouterr()
    assert len(cells) == 4 and all(not c.first_failure for c in cells)
    assert "noisy target x keras" in out
    assert "NOISE" not in out and "NOISE" not in err
    log = (tmp_path / f"{stem('noisy target')}.log").read_text()
    assert log.count("NOISE-AT-LOAD") == 4 and "NOISE-AT-RUN" in log
    os.write(2, b"after\n")                     # descriptor 2 is given back
    assert capfd.readouterr().err == "after\n"
