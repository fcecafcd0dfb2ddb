import pytest

from tests.conftest import write
from workflow.campaign.pool import PoolError, load_pool
from workflow.common.chem import check_psmiles


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


# --- polymer identity, validation, generation -------------------------------------------------
import hashlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pandas as pd  # noqa: E402

from tests.conftest import REPO  # noqa: E402
from workflow.campaign.pool import read_provenance, validate_pool
from workflow.common.chem import polymer_key  # noqa: E402


def test_polymer_key_is_the_chain_not_the_way_it_is_written():
    same = [("*CC(*)c1ccccc1", "*C(C*)c1ccccc1"),  # reversed
            ("*CC(CC(*)(C)C(=O)OC)C(=O)OC", "*CC(C)(CC(*)C(=O)OC)C(=O)OC"),  # alternating copolymer, shifted
            ("*Oc1ccc(cc1)C(c1ccc(cc1)OC(=O)*)(C)C", "*c1ccc(cc1)C(c1ccc(cc1)OC(=O)O*)(C)C"),  # PC from the ring
            ("*CC(C)C(*)C(=O)OC", "*C(C(=O)OC)C(C)C*")]  # head-to-head unit read from the other end
    for a, b in same:
        assert polymer_key(a) == polymer_key(b), (a, b)
    different = [("*CC(*)C", "*CCC*"), ("*/C=C/CC*", "*/C=C\\CC*"), ("*CC(CC(*)C)C(=O)OC", "*CC(C)C(*)C(=O)OC")]
    for a, b in different:
        assert polymer_key(a) != polymer_key(b), (a, b)


@pytest.mark.integration
def test_validate_reports_every_problem_by_row(tmp_path):
    big = "*" + "C" * 60 + "*"  # 180 atoms: over half of smoke's 300-atom chain
    pool = write(tmp_path / "pool.csv", "id,smiles\n"
                 "A,*CC(CC(*)(C)C(=O)OC)C(=O)OC\n"
                 "B,*CC(C)(CC(*)C(=O)OC)C(=O)OC\n"   # row 2: A shifted by one monomer
                 "C,*CC(*)N=[N+]=[N-]\n"              # row 3: GAFF2_mod has no type for the azide's end N
                 f"D,{big}\n"                          # row 4: 180 atoms
                 "E,*CC(*)[Se]C\n"                     # row 5: element
                 "F,*CC\n"                             # row 6: one link
                 "A,*CCO*\n")                          # row 7: duplicate id
    report = validate_pool(pool, max_unit_atoms=50, check_typing=True)
    got = {(p.row, p.kind) for p in report.problems}
    assert got == {(2, "duplicate"), (3, "untypable"), (4, "too_large"), (5, "element"), (6, "links"),
                   (7, "duplicate_id")}
    assert [p.row for p in report.problems] == sorted(p.row for p in report.problems)
    dup = next(p for p in report.problems if p.kind == "duplicate")
    assert "duplicate of row 1" in dup.problem and dup.id == "B"
    assert report.n_rows == 7 and report.n_valid == 1
    # the command: problems with rows, a summary, non-zero exit
    out = subprocess.run([sys.executable, "-m", "workflow.cli", "pool", "validate", str(pool), "--preset", "smoke",
                          "--gaff2"], capture_output=True, text=True)
    assert out.returncode == 1
    assert "pool.csv: row 2 (id B): duplicate of row 1" in out.stdout
    assert "7 rows, 1 usable" in out.stdout and "too_large 1" in out.stdout


MONOMERS = """name,smiles
styrene,C=Cc1ccccc1
methyl methacrylate,C=C(C)C(=O)OC
4-iodylstyrene,C=Cc1ccc(I(=O)=O)cc1
vinyltrimethylsilane,C=C[Si](C)(C)C
ethylene glycol,OCCO
terephthalic acid,OC(=O)c1ccc(C(=O)O)cc1
terephthaloyl chloride,ClC(=O)c1ccc(C(Cl)=O)cc1
hexamethylenediamine,NCCCCCCN
"""


@pytest.mark.integration
def test_generate_keeps_usable_distinct_chains_with_their_monomers(tmp_path):
    from workflow.campaign.poolgen import generate_pool, read_monomers

    result = generate_pool(read_monomers(write(tmp_path / "m.csv", MONOMERS)), workers=2)
    df = result.entries
    assert df["id"].is_unique and df["id"].iloc[0] == "SP00001"
    assert all(s.count("*") == 2 for s in df["smiles"])
    assert len({polymer_key(s) for s in df["smiles"]}) == len(df)
    assert not df["smiles"].str.contains("Si").any() and not df["smiles"].str.contains("I").any()
    assert result.dropped["element"] >= 1 and result.dropped["untypable"] >= 1 and result.dropped["duplicate"] >= 1
    # styrene-MMA: alternating head-to-tail, and head-to-head/tail-to-tail (its two other regio forms are
    # the same chain shifted by two atoms)
    assert (df["monomers"] == "methyl methacrylate + styrene").sum() == 2
    pet = df[df["smiles"].map(polymer_key) == polymer_key("*OCCOC(=O)c1ccc(cc1)C(*)=O")]
    assert len(pet) == 1 and pet["polymer_class"].iloc[0] == "polyester"
    assert pet["monomers"].iloc[0] == "ethylene glycol + terephthalic acid"  # the acid chloride's copy merged
    nylon = df[df["smiles"].map(polymer_key) == polymer_key("*NCCCCCCNC(=O)c1ccc(cc1)C(*)=O")]
    assert nylon["polymer_class"].tolist() == ["polyamide"]
    assert {"polyolefin", "polyester", "polyamide"} <= set(df["polymer_class"])


@pytest.mark.integration
def test_generate_command_writes_a_pool_that_says_how_it_was_made(tmp_path):
    m = write(tmp_path / "m.csv", MONOMERS)
    for out in ("pool.parquet", "pool.csv"):
        run = subprocess.run([sys.executable, "-m", "workflow.cli", "pool", "generate", "--monomers", str(m),
                              "--out", str(tmp_path / out), "--classes", "polyolefin,polyester", "--workers", "1"],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        prov = read_provenance(tmp_path / out)
        assert prov["monomer_file_sha256"] == hashlib.sha256(m.read_bytes()).hexdigest()
        assert prov["remake"].startswith("workflow pool generate --monomers m.csv") and "smipoly" in prov["versions"]
        assert set(prov["per_class"]) == {"polyolefin", "polyester"}
        pool = load_pool(tmp_path / out)
        assert not pool.problems and len(pool) == prov["entries"]
        assert {"monomers", "polymer_class", "monomer_smiles"} <= set(pool.entries.columns)
    bad = write(tmp_path / "bad.csv", "name,smiles\nok,C=C\nbroken,C1=CC\n")
    run = subprocess.run([sys.executable, "-m", "workflow.cli", "pool", "generate", "--monomers", str(bad),
                          "--out", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert run.returncode == 2 and "row 2 (broken)" in run.stderr


@pytest.mark.integration
def test_shipped_default_pool():
    path = REPO / "pools" / "default.parquet"
    prov = read_provenance(path)
    assert prov is not None, "pools/default.parquet carries no provenance"
    monomers = REPO / "pools" / prov["monomer_file"]
    assert prov["monomer_file_sha256"] == hashlib.sha256(monomers.read_bytes()).hexdigest(), \
        "pools/monomers.csv changed since the default pool was generated: remake it (pools/README.md)"
    pool = load_pool(path)
    assert not pool.problems and len(pool) >= 10_000
    df = pool.entries
    assert set(df["polymer_class"]) >= {"polyolefin", "polyester", "polyamide", "polyimide", "polyurethane"}
    assert df["smiles"].str.contains("S").mean() > 0.1 and df["smiles"].str.contains("c").mean() > 0.4
    names = set(pd.read_csv(monomers)["name"])
    assert all(m in names or m.startswith(("carbon monoxide", "formaldehyde"))
               for ms in df["monomers"].head(2000) for m in ms.split(" + "))


def test_a_parquet_pool_with_a_null_id_and_bytes_psmiles_reports_both_rows(tmp_path):
    """Issue 40, case 10: a null id raised AttributeError ('float' has no 'strip'); bytes PSMILES read as empty
    (a binary column's UTF-8 is its text; bytes that are not UTF-8 are named)."""
    import pandas as pd

    from workflow.campaign.pool import load_pool

    path = tmp_path / "pool.parquet"
    pd.DataFrame({"id": ["P1", None, "P3", "P4"], "smiles": [b"*CC*", b"*CC(*)C", b"*CC(*)Cl", b"\xff*C*"]}
                 ).to_parquet(path)
    pool = load_pool(path)
    assert list(pool.entries["id"]) == ["P1", "P3"] and list(pool.entries["smiles"]) == ["*CC*", "*CC(*)Cl"]
    assert [(p.row, p.kind) for p in pool.problems] == [(2, "empty_id"), (4, "unparsable")]
    assert "bytes" in pool.problems[1].problem and "not text" in pool.problems[1].problem
