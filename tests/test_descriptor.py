import numpy as np
import pytest

from surrogate.descriptor import (
    N_FEATURES,
    SETTINGS,
    featurize,
    ff_kernel_mean,
    oligomer_size,
)

DIVERSE = {
    "aliphatic": "*CC(*)CC",
    "aromatic backbone": "*c1ccc(S*)cc1",
    "fluorinated": "*C(F)(F)C(F)(F)*",
    "sulfur": "*CCS*",
    "nitrogen": "*CCCCCC(=O)N*",
    "chlorine": "*CC(*)Cl",
    "ester, aromatic": "*CCOC(=O)c1ccc(cc1)C(=O)O*",
    "imide, aromatic": "*c1ccc(cc1)N1C(=O)c2ccc(cc2C1=O)*",
    # the classes where a cyclic trimer is not RadonPy's 10-mer (PI1070 ids)
    "one backbone atom (PI502)": "*C(*)C(=O)OCC",
    "polyacetylene (PI50)": "*/C=C/*",
    "substituted polyacetylene (PI840)": "*/C(Cl)=C(/*)c1ccccc1",
    "thiophene backbone (PI914)": "*c1ccc(*)s1",
    "thiophene side group (PI373)": "*C(C*)C1=CC=CS1",
    "polyphosphazene (PI823)": "*N=P(*)(OCC(F)(F)F)OCC(F)(F)F",
    "backbone double bond, 4 atoms (PI304)": "*C(=CCC*)c1ccccc1",
    "poly-p-phenylene": "*c1ccc(*)cc1",
    "conjugated heteroaromatic ladder, cyclic dimer (PI917)":
        "*c1ccc2sc3ccc(-c4nc5cc(-c6ccc7[nH]c(*)nc7c6)ccc5[nH]4)cc3c2c1",
}


def radonpy_cyclic10(smiles: str) -> np.ndarray:
    """RadonPy's own descriptor path (ffkm_mp_wrapper) on a cyclic 10-mer, in this process."""
    from radonpy.core import poly
    from radonpy.ff.descriptor import FF_descriptor
    from radonpy.ff.gaff2_mod import GAFF2_mod

    desc = FF_descriptor(GAFF2_mod(), polar=False, nk=SETTINGS["nk"], s=SETTINGS["s"])
    mol = poly.make_cyclicpolymer(smiles, n=10, return_mol=True)
    assert desc.ff.ff_assign(mol, charge="gasteiger")
    return np.asarray(desc.ff_kernel_mean([mol]))


@pytest.mark.parametrize("kind", list(DIVERSE))
def test_descriptor_equals_radonpy_cyclic_decamer(kind):
    smi = DIVERSE[kind]
    x = ff_kernel_mean(smi)
    x10 = radonpy_cyclic10(smi)
    assert x.shape == (N_FEATURES,)
    assert np.max(np.abs(x - x10)) < 1e-12
    assert x[:10].sum() > 0 and not np.allclose(x, ff_kernel_mean("*CCO*"))


@pytest.mark.parametrize("smi, n", [("*CC(*)c1ccccc1", 3), ("*C(*)C(=O)OCC", 10), ("*/C=C/*", 10),
                                    ("*c1ccc(*)s1", 6), ("*N=P(*)(OC)OC", 10), ("*Oc1ccc(cc1)C(C)(C)c1ccc(cc1)OC(=O)*", 3),
                                    ("*c1ccc(cc1)N1C(=O)c2ccc(cc2C1=O)*", 2)])
def test_oligomer_size_by_backbone(smi, n):
    assert oligomer_size(smi) == n


@pytest.mark.parametrize("smi", ["*C(*)C(=O)OCC", "*/C=C/*", "*/C(Cl)=C(/*)c1ccccc1"])
def test_the_trimer_is_not_the_decamer_for_these_classes(smi):
    """Why the size matters: the trimer of these classes (a cyclopropane, benzene, a hexasubstituted benzene) is
    typed otherwise than RadonPy's 10-mer."""
    assert np.max(np.abs(ff_kernel_mean(smi, cyclic=3) - radonpy_cyclic10(smi))) > 1e-2


def test_fused_aromatic_backbone_does_not_hang_and_is_size_independent():
    # RadonPy's cyclic trimer of this polyimide (PI1070's PI698) spends minutes kekulizing, its
    # cyclic 10-mer never ends; the Kekule-first oligomer gives the same numbers for any size.
    smi = "*c1ccc(Oc2ccc(C(C)(C)c3ccc(Oc4ccc(N5C(=O)c6cc7C(=O)N(*)C(=O)c7cc6C5=O)cc4)cc3)cc2)cc1"
    x3 = ff_kernel_mean(smi)
    assert np.max(np.abs(x3 - ff_kernel_mean(smi, cyclic=6))) < 1e-12
    assert np.all(np.isfinite(x3)) and x3[:10].sum() > 0


def test_cache_returns_identical_arrays_and_skips_work(tmp_path):
    smiles = ["*CC*", "*CC(*)C", "*CCO*", "*CC*"]
    cache = tmp_path / "cache.sqlite"
    first = featurize(smiles, cache_path=cache, workers=2)
    assert first.computed == 3 and first.cached == 0 and not first.failures
    np.testing.assert_array_equal(first.X[0], first.X[3])
    second = featurize(smiles, cache_path=cache, workers=2)
    assert second.computed == 0 and second.cached == 4
    np.testing.assert_array_equal(first.X, second.X)


@pytest.mark.integration
def test_failures_and_time_limit_are_reported_not_hung(tmp_path):
    res = featurize(["*CC*", "*C[Si](C)(C)*"], cache_path=None, workers=2)
    assert np.all(np.isfinite(res.X[0]))
    assert 1 in res.failures and np.all(np.isnan(res.X[1]))
    # a C100 repeat unit takes ~8 s here; with a 1 s limit its worker is killed and replaced
    slow = featurize(["*" + "C" * 100 + "*", "*CC(*)C"], cache_path=None, workers=1, timeout_s=1.0)
    assert "longer than 1 s" in slow.failures[0]
    assert 1 not in slow.failures and np.all(np.isfinite(slow.X[1]))


@pytest.mark.integration
def test_pool_featurize_writes_parquet_with_ids(tmp_path):
    import subprocess
    import sys

    import pandas as pd

    pool = tmp_path / "pool.csv"
    pool.write_text("id,smiles\nPE,*CC*\nbad,*C[Si](*)(C)C\nPP,*CC(*)C\nPE2,*CC*\n")
    out = tmp_path / "x.parquet"
    cmd = [sys.executable, "-m", "workflow.cli", "pool", "featurize", str(pool), "--out", str(out),
           "--cache", str(tmp_path / "cache.sqlite"), "--workers", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "bad" in res.stderr and "Si" in res.stderr and "PE2" in res.stderr  # skipped rows are named
    df = pd.read_parquet(out)
    assert df["id"].tolist() == ["PE", "PP"] and df.shape[1] == 2 + N_FEATURES
    np.testing.assert_array_equal(df.iloc[0, 2:].to_numpy(dtype=float), ff_kernel_mean("*CC*"))
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0 and "2 from cache, 0 computed" in again.stdout


def test_a_cache_read_does_not_leave_a_snapshot_that_fails_the_next_write(tmp_path):
    """Issue 40, case 3: get_many left a transaction open; after another campaign wrote the cache, this one's write
    met a stale WAL snapshot and failed at once ('database is locked', the busy timeout never applied)."""
    from surrogate.descriptor import DescriptorCache

    a, b = DescriptorCache(tmp_path / "d.sqlite"), DescriptorCache(tmp_path / "d.sqlite")
    a.put_many({"*CC*": np.zeros(3)})
    assert set(a.get_many(["*CC*", "*CC(*)C"])) == {"*CC*"}
    b.put_many({"*CC(*)C": np.ones(3)})  # another campaign writes meanwhile
    a.put_many({"*CC(*)Cl": np.full(3, 2.0)})  # failed with the snapshot still open
    assert set(a.get_many(["*CC*", "*CC(*)C", "*CC(*)Cl"])) == {"*CC*", "*CC(*)C", "*CC(*)Cl"}
    a.close()
    b.close()


def test_descriptors_reach_the_cache_as_they_are_computed_not_only_at_the_end(tmp_path, monkeypatch):
    """Issue 40, case 4: a driver stopped while featurizing (walltime SIGTERM, Ctrl-C) cached nothing."""
    import surrogate.descriptor as d

    monkeypatch.setattr(d, "SAVE_EVERY", 2, raising=False)
    pool = ["*CC*", "*CC(*)C", "*CC(*)Cl", "*CC(*)F", "*CC(*)CC", "*CC(*)(C)C"]
    seen = []

    def stop_after_four(n):
        seen.append(n)
        if sum(seen) >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        d.featurize(pool, cache_path=tmp_path / "c.sqlite", workers=1, advance=stop_after_four)
    again = d.featurize(pool, cache_path=tmp_path / "c.sqlite", workers=1)
    assert again.cached >= 4 and again.cached + again.computed == len(pool)
