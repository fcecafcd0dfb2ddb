"""Repeat units (PSMILES, two ``*`` links): checks and identity, used by pools, jobs and campaigns."""

from __future__ import annotations

from rdkit import Chem, RDLogger

from workflow.common.errors import shorten

GAFF2_MOD_ELEMENTS = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"})
"""Elements GAFF2_mod has types for (RadonPy's descriptor covers the same ten)."""


def canonical_psmiles(psmiles: str) -> str | None:
    mol = Chem.MolFromSmiles(psmiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def check_psmiles(psmiles: str) -> str | None:
    """None for a usable repeat unit, else a one-line description of the problem."""
    found = classify_psmiles(psmiles)
    return None if found is None else found[1]


def classify_psmiles(psmiles: str) -> tuple[str, str] | None:
    """None for a usable repeat unit, else ``(kind, one-line description)``."""
    if psmiles is None or (isinstance(psmiles, float) and psmiles != psmiles) or (
            isinstance(psmiles, str) and not psmiles.strip()):
        return "unparsable", "empty PSMILES"
    if not isinstance(psmiles, str):
        return "unparsable", f"PSMILES is {type(psmiles).__name__} ({shorten(repr(psmiles))}), not text"
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(psmiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None:
        return "unparsable", f"RDKit cannot parse PSMILES {shorten(repr(psmiles))}"
    links = sum(1 for a in mol.GetAtoms() if a.GetAtomicNum() == 0)
    if links != 2:
        return "links", f"PSMILES {shorten(repr(psmiles))} has {links} '*' links; a repeat unit needs exactly 2"
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 0 and atom.GetDegree() != 1:
            return "links", f"a '*' link in {shorten(repr(psmiles))} must bond to exactly one atom"
    unsupported = sorted({a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() > 0} - GAFF2_MOD_ELEMENTS)
    if unsupported:
        return "element", f"element(s) {', '.join(unsupported)} in {shorten(repr(psmiles))} have no GAFF2_mod type"
    return None


def polymer_key(psmiles: str) -> str:
    """Identity of the chain a repeat unit describes: the canonical SMILES of the ring of three units joined
    head to tail (RDKit ``molzip``).

    The ring is the same whichever atom the repeat unit starts at and whichever way it is written;
    three units keep even one-atom backbones (``*C(F)(F)*``) a real ring.
    """
    n = 3
    mol = Chem.MolFromSmiles(psmiles)
    links = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    ring = None
    for i in range(n):
        unit = Chem.RWMol(mol)
        unit.GetAtomWithIdx(links[0]).SetAtomMapNum(i + 1)
        unit.GetAtomWithIdx(links[1]).SetAtomMapNum((i + 1) % n + 1)
        ring = unit if ring is None else Chem.CombineMols(ring, unit)
    RDLogger.DisableLog("rdApp.*")  # molzip warns about E/Z bond directions it reconciles
    try:
        return Chem.MolToSmiles(Chem.molzip(ring))
    finally:
        RDLogger.EnableLog("rdApp.*")


def unit_atoms(psmiles: str) -> int:
    """Atoms of one repeat unit, hydrogens included, links excluded."""
    mol = Chem.AddHs(Chem.MolFromSmiles(psmiles))
    return sum(1 for a in mol.GetAtoms() if a.GetAtomicNum() > 0)



def unit_mol_weight(psmiles: str) -> float:
    """Molar mass (g/mol) of one repeat unit, hydrogens included, links excluded."""
    mol = Chem.AddHs(Chem.MolFromSmiles(psmiles))
    return float(sum(a.GetMass() for a in mol.GetAtoms() if a.GetAtomicNum() > 0))
