"""The example plugin passes imgtrans's conformance kit: run ``python -m pytest`` in this folder
with the plugin installed (``pip install -e .``)."""
from imgtrans.testing import CASE_KINDS, check_case, conformance, conformance_cases


@conformance("example")  # one test per thing the plugin registered, e.g. test_conformance[loss:example_charbonnier]
def test_conformance(kind, name, tmp_path):
    check_case(kind, name, tmp_path)


def test_registers_one_of_each_kind():
    assert sorted({kind for kind, _ in conformance_cases("example")}) == sorted(CASE_KINDS)
