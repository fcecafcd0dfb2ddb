import pytest

from tests.conftest import write
from workflow.pool import PoolError, check_psmiles, load_pool


def test_bad_rows_are_reported_with_row_and_id_and_skipped(tmp_path):
    pool = write(tmp_path / "pool.csv", "id,smiles,name\n"
                 "A,*CC*,polyethylene\n"
                 "B,*CC(*)c1ccc(cc1)X,bad parse\n"
                 "C,*CCC,one link\n"
                 "D,*C[Si](C)(C)*,silicon\n"
                 "E,*CC(*)C,polypropylene\n"
                 "F,*C(C*)C,polypropylene written the other way\n"
                 "A,*CCO*,duplicate id\n")
    p = load_pool(pool)
    assert p.entries["id"].tolist() == ["A", "E"]
    assert p.entries["name"].tolist() == ["polyethylene", "polypropylene"]
    msgs = {pr.row: (pr.id, pr.problem) for pr in p.problems}
    assert msgs[2][0] == "B" and "cannot parse" in msgs[2][1]
    assert msgs[3][0] == "C" and "1 '*' links" in msgs[3][1]
    assert msgs[4][0] == "D" and "Si" in msgs[4][1] and "GAFF2_mod" in msgs[4][1]
    assert msgs[6][0] == "F" and "duplicate of row 5" in msgs[6][1]
    assert msgs[7][0] == "A" and "duplicate id" in msgs[7][1]
    assert str(p.problems[0]).startswith("row 2 (id B):")


def test_check_psmiles_accepts_real_polymers():
    for smi in ("*CC(*)c1ccccc1", "*Oc1ccc(cc1)C(c1ccc(cc1)OC(=O)*)(C)C", "*C(F)(F)C(F)(F)*", "*CCS*"):
        assert check_psmiles(smi) is None, smi


def test_unreadable_pool_files_are_clear_errors(tmp_path):
    with pytest.raises(PoolError, match="does not exist"):
        load_pool(tmp_path / "missing.csv")
    bad = write(tmp_path / "nosmiles.csv", "id,psmiles\nA,*CC*\n")
    with pytest.raises(PoolError, match="lacks column"):
        load_pool(bad)


def test_shipped_pool_has_real_polymers():
    from tests.conftest import REPO

    p = load_pool(REPO / "pools" / "demo.csv")
    assert len(p) >= 40
    assert {"polystyrene", "poly(methyl methacrylate)"} <= set(p.entries["name"])
