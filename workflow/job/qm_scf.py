"""The repeat unit's SCF in PySCF: the basis per element, the molecule, the (density-fitted) Kohn-Sham object."""

from __future__ import annotations

from rdkit import Chem

from workflow.job.failures import PhysicsError
from workflow.job.presets import QMSettings


class QMError(PhysicsError):
    """The SCF or the response solve did not converge."""



def basis_per_element(symbols, settings: QMSettings, basis_name: str | None = None) -> dict[str, str]:
    """The preset's basis for each element (``element_basis`` where it names one, e.g. H or I). With another
    ``basis_name`` (the geometry optimisation's) only the exceptions for elements past Kr apply."""
    from pyscf.data.elements import charge

    exceptions = settings.element_basis if basis_name in (None, settings.basis) else {
        el: b for el, b in settings.element_basis.items() if charge(el) > 36}
    return {el: exceptions.get(el, basis_name or settings.basis) for el in sorted(set(symbols))}


def pyscf_molecule(mol: Chem.Mol, basis: str | dict[str, str], memory_mb: int):
    """A PySCF ``Mole`` of an RDKit molecule's conformer (its formal charge, closed shell)."""
    from pyscf import gto

    conf = mol.GetConformer()
    atoms = [(a.GetSymbol(), tuple(conf.GetAtomPosition(a.GetIdx()))) for a in mol.GetAtoms()]
    return gto.M(atom=atoms, basis=basis, ecp=def2_core_potentials(mol, basis), charge=Chem.GetFormalCharge(mol),
                 unit="Angstrom", verbose=0, max_memory=memory_mb)


def def2_core_potentials(mol: Chem.Mol, basis: str | dict[str, str]) -> dict[str, str]:
    """The def2 effective core potentials that a def2 basis assumes for the molecule's elements past Kr
    (without one the basis describes the wrong number of electrons)."""
    heavy = {a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() > 36}
    per_element = basis if isinstance(basis, dict) else {el: basis for el in heavy}
    return {el: per_element[el] for el in sorted(heavy) if per_element.get(el, "").lower().startswith("def2")}


def build_scf(mol: Chem.Mol, settings: QMSettings, functional: str | None = None, basis_name: str | None = None,
              grid_level: int | None = None):
    """A converged PySCF RKS object for an RDKit molecule with one conformer (the preset's method unless given)."""
    from pyscf import dft

    functional = functional or settings.functional
    basis_name = basis_name or settings.basis
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    mf = dft.RKS(pyscf_molecule(mol, basis_per_element(symbols, settings, basis_name), settings.memory_mb))
    mf.xc = functional
    mf.grids.level = settings.grid_level if grid_level is None else grid_level
    if settings.density_fit:
        mf = mf.density_fit(auxbasis=settings.auxbasis)
    mf.max_cycle = settings.scf_max_cycles
    mf.conv_tol = settings.scf_conv_tol
    mf.conv_check = False  # converged by conv_tol; PySCF's extra check costs one more Fock build
    mf.kernel()
    if not mf.converged:
        raise QMError(f"SCF did not converge in {settings.scf_max_cycles} cycles ({functional}/{basis_name})")
    return mf


def auxbasis_name(mf) -> str:
    """The density-fitting basis an SCF object uses ("none" without density fitting); one name per element
    where they differ (PySCF picks a JK-fitting set for the orbital basis, an even-tempered one where none
    exists)."""
    with_df = getattr(mf, "with_df", None)
    if with_df is None:
        return "none"
    if isinstance(with_df.auxbasis, str):
        return with_df.auxbasis
    from pyscf.df.addons import make_auxbasis

    names = {el: b if isinstance(b, str) else "even-tempered" for el, b in make_auxbasis(mf.mol).items()}
    distinct = set(names.values())
    return distinct.pop() if len(distinct) == 1 else ", ".join(f"{el}: {b}" for el, b in sorted(names.items()))
