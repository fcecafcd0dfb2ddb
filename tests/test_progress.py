"""The one progress helper and the per-step warning summary."""

import warnings

from rdkit import Chem

from workflow.common.progress import progress, summarised_warnings


def test_library_warnings_are_counted_and_summarised_in_one_line():
    said = []
    with summarised_warnings("featurize", said.append) as counts:
        for _ in range(5):
            warnings.warn("A not p.d., added jitter of 1.0e-08 to the diagonal", RuntimeWarning)
        warnings.warn("lbfgs failed to converge", UserWarning)
        assert Chem.MolFromSmiles("C1CC") is None  # RDKit complains about the unclosed ring
    assert len(said) == 1 and said[0].startswith("featurize: ")
    assert "5 x RuntimeWarning: A not p.d." in said[0] and "UserWarning: lbfgs" in said[0]
    assert any(k.startswith("RDKit: ") for k in counts)
    quiet = []
    with summarised_warnings("nothing", quiet.append):
        pass
    assert quiet == []


def test_progress_draws_nothing_when_stderr_is_not_a_terminal(capsys):
    with progress(10, "descriptors") as advance:
        for _ in range(10):
            advance(1)
    assert capsys.readouterr().err == ""
