"""``workflow pool generate``: virtual pools from a monomer list with SMiPoly's polymerisation rules.

SMiPoly (``monc.moncls`` then ``polg.biplym``) classifies monomers by functional group and applies
its reaction rules (chain-growth of vinyl monomers, polycondensation, polyaddition, ring opening),
giving homo- and alternating co-polymer repeat units. This module keeps what a campaign can use:

1. PSMILES with exactly two ``*`` links and only GAFF2_mod elements;
2. one entry per chain: repeat units that are the same molecule, or the same chain started at
   another atom, are merged (:func:`workflow.common.chem.polymer_key`); the first in a deterministic order
   (polymer class, monomer names, PSMILES) keeps its monomers;
3. units RadonPy's GAFF2_mod types (:func:`workflow.campaign.pool.gaff2_mod_problem`, in worker processes).

Each entry records its monomers (names from the monomer file, their SMILES) and polymer class.
The output file says how it was made: Parquet carries it in the schema metadata, CSV in a
``NAME.provenance.json`` beside it (:func:`workflow.campaign.pool.read_provenance`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing as mp
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from rdkit import Chem, RDLogger

from workflow.campaign.pool import (
    PROVENANCE_KEY,
    PoolError,
    gaff2_mod_problem,
    provenance_path,
)
from workflow.common.chem import canonical_psmiles, classify_psmiles, polymer_key
from workflow.common.progress import progress
from workflow.common.tables import read_table

# monomers SMiPoly adds by itself (``moncls`` appends them for carbonates and polyacetals)
SMIPOLY_EXTRA = {"[C-]#[O+]": "carbon monoxide (SMiPoly, for carbonates)", "C=O": "formaldehyde (SMiPoly)"}


@dataclass
class GeneratedPool:
    entries: pd.DataFrame  # id, smiles, polymer_class, monomers, monomer_smiles, reaction
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, str] = field(default_factory=dict)  # reason -> one dropped PSMILES
    unclassified: list[str] = field(default_factory=list)  # monomer names SMiPoly found no class for
    seconds: float = 0.0


def read_monomers(path: str | Path) -> pd.DataFrame:
    """A monomer table (CSV/Parquet) with a ``smiles`` column and optionally ``name``; errors name the row."""
    path = Path(path)
    df = read_table(path, what="monomer")
    if "smiles" not in df.columns:
        raise PoolError(f"monomer file {path} lacks column smiles (has {', '.join(map(str, df.columns))})")
    df = df.copy()
    if "name" not in df.columns:
        df["name"] = df["smiles"]
    RDLogger.DisableLog("rdApp.*")
    try:
        for i, (name, smi) in enumerate(zip(df["name"], df["smiles"]), start=1):
            if not isinstance(smi, str) or Chem.MolFromSmiles(smi) is None:
                raise PoolError(f"monomer file {path}: row {i} ({name}): RDKit cannot parse SMILES {smi!r}")
            if "*" in smi:
                raise PoolError(f"monomer file {path}: row {i} ({name}): a monomer has no '*' links ({smi!r})")
    finally:
        RDLogger.EnableLog("rdApp.*")
    return df.reset_index(drop=True)


def _smipoly(monomers: pd.DataFrame, classes: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """SMiPoly's raw output (mon1, mon2, polym, polymer_class, Ps_rxnL) and the unclassified monomers."""
    import contextlib
    import io

    from smipoly.smip import monc, polg

    RDLogger.DisableLog("rdApp.*")  # SMiPoly's reaction templates warn about unmapped atoms
    try:
        with contextlib.redirect_stdout(io.StringIO()) as said:
            classified = monc.moncls(monomers[["smiles"]].copy(), "smiles")
            raw = polg.biplym(classified, targ=classes)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if raw is None:  # biplym prints and returns None for an unknown class
        raise PoolError(f"SMiPoly rejected the polymer classes {classes}: {said.getvalue().strip()}")
    flags = [c for c in classified.columns if c not in ("smiles", "smip_cand_mons")]
    none = ~classified[flags].fillna(False).astype(bool).any(axis=1)
    names = dict(zip(monomers["smiles"], monomers["name"]))
    unclassified = [names.get(s, s) for s in classified.loc[none, "smiles"] if s not in SMIPOLY_EXTRA]
    return raw, unclassified


def _typing_worker(psmiles: str) -> str | None:
    return gaff2_mod_problem(psmiles)


def _typing(smiles: list[str], workers: int, log) -> list[str | None]:
    """GAFF2_mod typing problems, in worker processes (RadonPy is single-threaded)."""
    if workers <= 1:
        return [gaff2_mod_problem(s) for s in smiles]
    out: list[str | None] = []
    with progress(len(smiles), "GAFF2_mod typing") as advance, \
            ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        for problem in ex.map(_typing_worker, smiles, chunksize=64):
            out.append(problem)
            advance(1)
    return out


def generate_pool(monomers: pd.DataFrame, classes: list[str] | None = None, workers: int = 1,
                  id_prefix: str = "SP", log=lambda m: None) -> GeneratedPool:
    """Repeat units SMiPoly makes from ``monomers`` (columns ``smiles``, ``name``), filtered as the module says."""
    t0 = time.monotonic()
    classes = classes or ["all"]
    raw, unclassified = _smipoly(monomers, classes)
    log(f"SMiPoly: {len(raw)} repeat units from {len(monomers)} monomers ({time.monotonic() - t0:.0f} s)")
    canon_name = {canonical_psmiles(s): n for s, n in zip(monomers["smiles"], monomers["name"])}
    canon_name.update({canonical_psmiles(s): n for s, n in SMIPOLY_EXTRA.items()})

    @functools.cache  # ~23,000 rows name the same few hundred monomers
    def name(smi) -> str:
        return "" if not isinstance(smi, str) or not smi else canon_name.get(canonical_psmiles(smi), smi)

    rows = []
    for mon1, mon2, polym, pclass, rxn in zip(raw["mon1"], raw["mon2"], raw["polym"], raw["polymer_class"],
                                              raw["Ps_rxnL"]):
        mons = sorted((name(m), m) for m in (mon1, mon2) if isinstance(m, str) and m)  # by name
        rows.append({"psmiles": polym, "polymer_class": pclass, "monomers": " + ".join(n for n, _ in mons),
                     "monomer_smiles": ".".join(m for _, m in mons), "reaction": int(rxn)})
    rows.sort(key=lambda r: (r["polymer_class"], r["monomers"], str(r["psmiles"])))

    result = GeneratedPool(entries=pd.DataFrame(), unclassified=unclassified)

    def drop(reason: str, smi: str) -> None:
        result.dropped[reason] += 1
        result.examples.setdefault(reason, smi)

    kept, seen = [], set()
    for r in rows:
        smi = r["psmiles"]
        found = classify_psmiles(smi)
        if found is not None:
            drop(found[0], str(smi))
            continue
        key = polymer_key(smi)
        if key in seen:
            drop("duplicate", smi)
            continue
        seen.add(key)
        kept.append({**r, "smiles": canonical_psmiles(smi)})
    log(f"{len(kept)} distinct chains; checking GAFF2_mod typing with {workers} worker(s)")
    problems = _typing([r["smiles"] for r in kept], workers, log)
    typed = []
    for r, problem in zip(kept, problems):
        if problem is None:
            typed.append(r)
        else:
            drop("untypable", r["smiles"])
    width = max(5, len(str(len(typed))))
    entries = pd.DataFrame(typed, columns=["smiles", "polymer_class", "monomers", "monomer_smiles", "reaction"])
    entries.insert(0, "id", [f"{id_prefix}{i:0{width}d}" for i in range(1, len(typed) + 1)])
    result.entries = entries
    result.seconds = time.monotonic() - t0
    return result


def provenance(monomer_file: Path, classes: list[str], result: GeneratedPool, command: str) -> dict:
    return {
        "made_by": "workflow pool generate (PolyScout; SMiPoly monc.moncls + polg.biplym)",
        "remake": command,
        "monomer_file": monomer_file.name,
        "monomer_file_sha256": hashlib.sha256(monomer_file.read_bytes()).hexdigest(),
        "polymer_classes": classes,
        "entries": len(result.entries),
        "per_class": {k: int(v) for k, v in result.entries["polymer_class"].value_counts().items()},
        "dropped": dict(result.dropped),
        "unclassified_monomers": result.unclassified,
        "versions": {p: version(p) for p in ("smipoly", "rdkit", "radonpy-pypi")},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_pool(entries: pd.DataFrame, out: Path, meta: dict) -> None:
    """Write a pool with its provenance (Parquet: in the file; CSV: beside it)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(entries, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               PROVENANCE_KEY: json.dumps(meta).encode()})
        pq.write_table(table, out)
    elif out.suffix.lower() == ".csv":
        entries.to_csv(out, index=False)
        provenance_path(out).write_text(json.dumps(meta, indent=1) + "\n")
    else:
        raise PoolError(f"output {out}: use a .csv or .parquet file name")
