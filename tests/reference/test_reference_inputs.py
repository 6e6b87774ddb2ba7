"""The reference's reading of the inputs issue 15 added to the suite, on hand cases whose expected
trajectories are derived in tests/input_cases.py (comments) and checked against tf_keras legacy in
tests/conformance/test_keras_inputs.py:

* clipping of sparse gradients acts on the values as given, before duplicate rows are summed
  (C-1), and the global norm counts them next to dense gradients;
* the legacy ``decay`` divides each step's learning rate by ``1 + decay * iterations`` (LR-3);
* a learning rate given per step (a zero-argument callable's value at each step) is read at
  each step (LR-4).

Each hand trajectory is accepted, and each wrong reading of the input (clipping after summing,
no decay, decay one step late, a callable read once) is rejected.
"""

from __future__ import annotations

import pytest
from input_cases import CLIP_CASES, LR_READINGS, PER_STEP, lr_case, lr_trajectory, sparse_case, table_trajectory

from adamax_spec.reference.verdict import judge


@pytest.mark.parametrize("name", sorted(CLIP_CASES))
def test_sparse_values_are_clipped_as_given(name: str) -> None:
    values, clip, dense, right, wrong, dense_g = CLIP_CASES[name]
    case = sparse_case(values, clip, dense)
    extra = None if dense_g is None else [dense_g[0]]
    good = judge(case, table_trajectory(right, extra), "keras")
    assert good.ok, good.failures[:1]
    extra = None if dense_g is None else [dense_g[1]]
    bad = judge(case, table_trajectory(wrong, extra), "keras")
    assert not bad.ok
    assert bad.failures[0].param == 0 and bad.failures[0].quantity.startswith(("m", "u")), bad.failures[0]


@pytest.mark.parametrize("name", sorted(LR_READINGS))
def test_each_steps_learning_rate_is_read_as_given(name: str) -> None:
    lr, decay, readings = LR_READINGS[name]
    case = lr_case(lr, decay)
    for reading, rates in readings.items():
        v = judge(case, lr_trajectory(rates), "keras")
        assert v.ok == (reading == "right"), (reading, v.failures[:1])


def test_per_step_values_beyond_the_last_step_are_ignored_and_too_few_are_an_error() -> None:
    case = lr_case((*PER_STEP, 7.0), None)
    assert judge(case, lr_trajectory(list(PER_STEP)), "keras").ok
    with pytest.raises(ValueError, match="per-step values"):
        judge(lr_case(PER_STEP[:2], None), lr_trajectory(list(PER_STEP)), "keras")
