"""Protocol presets: every physics setting of a property job, in one typed place.

A preset scales the same code path from a one-minute CI job (``smoke``) to RadonPy's published
protocol (``full``). Nothing in the job branches on the preset's name; it only reads these fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workflow.common.errors import ConfigError, load_yaml_mapping, one_line

WAVELENGTHS_NM: tuple[float, float, float] = (486.1, 589.3, 656.3)
"""Fraunhofer F, D and C lines: n_F, n_D, n_C give the Abbe number."""


S = TypeVar("S", bound="_Frozen")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def part(self, slice_type: type[S]) -> S:
        """The fields of these settings that ``slice_type`` declares, as that typed slice (a stage's key hashes it)."""
        return slice_type.model_validate(self.model_dump(include=set(slice_type.model_fields)))


# --- QM settings, by what depends on them: each field is declared in exactly one slice, and each job stage hashes
# the slices it reads (workflow/job/stages.py), so a new field enters the keys of the stages that read it.
class DensityFitting(_Frozen):
    """Read by the MD charges and the polarizabilities."""

    # density fitting (RI) of Coulomb and exchange, in the SCF and in the response kernel
    density_fit: bool = True


class ChargeSettings(DensityFitting):
    """The MD charges' QM (the ``monomer`` stage): charge_model esp, or resp without Psi4."""

    # RadonPy's RESP level, HF/6-31G(d)
    charge_method: str = "hf"
    charge_basis: str = "6-31g(d)"


class PolarizabilitySettings(DensityFitting):
    """Polarizability of the capped repeat unit (PySCF, linear response): the ``qm`` stage and the cap reference."""

    functional: str = "cam-b3lyp"
    # aug-cc-pVDZ: alpha_D and the dispersion ratio of polystyrene within 0.05% of aug-cc-pVTZ (benchmarks/qm_speed.py);
    # PySCF's 6-311+G(2d,p) has no Si, P, S, Cl or Br
    basis: str = "aug-cc-pvdz"
    # per-element exceptions to ``basis`` (cc-pVDZ on H makes heavy-aug-cc-pVDZ); a def2 basis on an element past Kr
    # brings its def2 effective core potential
    element_basis: dict[str, str] = Field(default_factory=lambda: {"I": "def2-svpd"})
    # ``auxbasis`` None is PySCF's JK-fitting basis for the orbital basis (def2-universal-jkfit for def2 sets)
    auxbasis: str | None = None
    grid_level: int = 3
    response_grid_level: int | None = None  # the XC kernel's grid in the response equations; None: grid_level
    n_conformers: int = 10
    scf_max_cycles: int = 100
    scf_conv_tol: float = 1e-9  # PySCF's energy criterion (its default)
    response_tol: float = 1e-5
    # leave the core orbitals (1s of C/N/O/F, 1s-2p of Si-Cl) out of the response: they hardly polarise at optical
    # frequencies and the kernel's cost grows with the occupied orbitals (benchmarks/qm_speed.py)
    response_frozen_core: bool = False
    # geometry: RDKit conformers screened by MMFF; then, if asked, a DFT optimisation (PySCF + geomeTRIC)
    optimize_geometry: bool = False
    opt_functional: str = "b3lyp"
    opt_basis: str = "6-31g(d,p)"
    opt_max_steps: int = 100
    # the DFT grid of the optimisation's SCF and gradients; None: grid_level
    opt_grid_level: int | None = None
    # when the optimisation stops (geomeTRIC's criteria, workflow/job/qm_geometry.py OPT_CONVERGENCE): "geometric" is its
    # default (Gaussian's rms/max gradient and displacement, and |dE| < 1e-6 Eh, all met); "loose" is Gaussian's
    # Opt=Loose thresholds with Q-Chem's rule (rms gradient, and rms displacement or |dE|): fewer of the last, flat
    # torsional steps (benchmarks/opt_convergence.py)
    opt_convergence: Literal["geometric", "loose"] = "geometric"
    # what replaces the two links (*) in the QM molecule, its reference then subtracted: "methyl" (CH3 caps, minus
    # ethane) or "hydrogen" (H caps, minus H2); both leave one link bond per unit (see workflow/job/qm.py)
    cap: Literal["methyl", "hydrogen"] = "methyl"


class QMResources(_Frozen):
    """How the QM runs, never what it computes: in no stage's key."""

    memory_mb: int = 4000


class QMSettings(QMResources, ChargeSettings, PolarizabilitySettings):
    """Every QM setting of a preset: the union of the slices above (a preset file lists them flat)."""


# --- MD settings, likewise by what depends on them
class CellSettings(_Frozen):
    """The amorphous cell RadonPy builds (the ``cell`` stage)."""

    n_chains: int = 10
    atoms_per_chain: int = 1000
    tacticity: str = "atactic"
    init_density: float = 0.05


class SimulationSettings(_Frozen):
    """What the LAMMPS runs compute from (every segment of the ``md`` stage)."""

    kspace_accuracy: float = 1e-6
    # packing: CG minimisation, short NVT at 0.1 fs, heating, then compression to `pack_density`
    relax_steps: int = 20_000
    heat_steps: int = 1_000_000
    compress_steps: int = 1_000_000
    max_temp: float = 700.0
    pack_density: float = 0.8
    # Larsen's 21-step compression/decompression: 7 rows of (NVT hot, NVT cool, NPT) steps
    eq21_steps: tuple[tuple[int, int, int], ...] = (
        (50000, 50000, 50000),
        (50000, 100000, 50000),
        (50000, 100000, 50000),
        (50000, 100000, 5000),
        (5000, 10000, 5000),
        (5000, 10000, 5000),
        (5000, 10000, 800000),
    )
    eq21_max_temp: float = 600.0
    max_press: float = 50000.0
    # NPT sampling at 300 K, 1 atm; density and the equilibrium check come from it
    sampling_steps: int = 5_000_000
    # time steps (fs) of the 21-step and of the sampling runs (steps are counted in these); SHAKE holds the X-H
    # bonds, so 2 fs is the AMBER-family standard; RadonPy's protocol runs 1 fs (benchmarks/md_speed.py)
    eq21_time_step: float = 1.0
    sampling_time_step: float = 1.0
    # Nose-Hoover barostat damping (fs) of every NPT run (RadonPy: 1000): a few hundred atoms fluctuate so much that
    # a short run needs a faster barostat to settle after the 21-step's decompression
    barostat_damping: float = 1000.0
    # LAMMPS's `drag` on the Nose-Hoover NPT lines (RadonPy: none): damps the barostat's ringing after the 21-step's
    # decompression, which in a few hundred atoms swings the density by +-10% over ~5 ps; it leaves the mean and
    # changes the fluctuations, so it suits a density, not a compressibility (LAMMPS: 0.2-2.0 damps in a few periods)
    barostat_drag: float = Field(default=0.0, ge=0.0)
    # RadonPy's 21-step rebuilds the neighbour lists at every step of its NPT rows ("check no"); with True they are
    # rebuilt when an atom has moved half the skin, as in every other run (PMMA cell at 50,000 atm: 32.1 -> 81.5
    # steps/s, no dangerous builds, the same density after 5 ps)
    eq21_npt_neighbor_check: bool = False
    # neighbour lists: RadonPy's 2 A skin, checked every `neighbor_every` steps (rebuilt only when an atom moved
    # half the skin: the forces do not change)
    neighbor_every: int = 1
    temp: float = 300.0
    press: float = 1.0
    thermo_freq: int = 1000
    dump_freq: int = 1000
    restart_freq: int = 10000


class AnalysisSettings(_Frozen):
    """How the sampling runs are read: the density's window and RadonPy's equilibrium check (the ``md`` stage)."""

    # RadonPy's analysis windows, in thermo rows (its defaults: 2000 and 2000)
    analysis_init: int = 2000
    analysis_width: int = 2000
    max_additional_runs: int = 4
    # RadonPy's convergence limits on the moving average's sd (relative to the mean: energies, density) are
    # multiplied by this. Set for RadonPy's ~10,000-atom cells and 2,000-row windows; the moving average's
    # noise grows as 1 / sqrt(atoms x rows), so a smaller cell or window needs the looser limit
    # sqrt(10,000 / atoms x 2,000 / rows) to tell the same drift from noise.
    convergence_scale: float = Field(default=1.0, ge=1.0)


class VerdictSettings(_Frozen):
    """What the record refuses (the ``record`` stage)."""

    require_equilibrium: bool = True
    nematic_order_max: float = 0.1


class MDSettings(VerdictSettings, AnalysisSettings, SimulationSettings, CellSettings):
    """Amorphous cell and LAMMPS equilibration (RadonPy builds the inputs): the union of the slices above."""

    @model_validator(mode="after")
    def _windows_fit_the_run(self) -> "MDSettings":
        rows = self.sampling_steps // self.thermo_freq
        if self.analysis_init + self.analysis_width > rows:
            raise ValueError(
                f"analysis_init + analysis_width = {self.analysis_init + self.analysis_width} thermo rows, "
                f"but sampling gives only {rows} (sampling_steps / thermo_freq)"
            )
        if len(self.eq21_steps) != 7:
            raise ValueError(f"eq21_steps needs 7 rows, got {len(self.eq21_steps)}")
        return self


class ProtocolPreset(_Frozen):
    name: str
    description: str = ""
    charge_model: Literal["gasteiger", "esp", "resp", "zero"] = Field(
        default="resp", description="MD charges: resp (RadonPy + Psi4; esp when Psi4 is missing), esp (PySCF "
                                    "Merz-Kollman fit), gasteiger (smoke), zero")
    qm: QMSettings = QMSettings()
    md: MDSettings = MDSettings()


# smoke's elements with aug-pcseg-1 instead of aug-pcseg-0 (every GAFF2 element but H, C and I)
POLARISED_ELEMENTS = ("N", "O", "F", "Si", "P", "S", "Cl", "Br")

SMOKE = ProtocolPreset(
    name="smoke",
    charge_model="esp",
    description="CI- and demo-sized: one 300-atom chain, HF/6-31G(d) ESP charges, a 21-step of 1 ps rows at 2 fs "
                "ending in 10 ps at 1 atm, 6 ps NPT sampling with a 200 fs barostat (densities 4.6% below "
                "RadonPy's published ones on average over 28 polymers; one cell's density spreads by ~5% between "
                "seeds); B3LYP/aug-pcseg-0 "
                f"polarizabilities with aug-pcseg-1 on {', '.join(POLARISED_ELEMENTS)} (n_D within 0.01 of experiment "
                "at handbook density for PS and PMMA, Abbe numbers ~10% low), about a minute per small unit on one core.",
    # aug-pcseg-0 has no polarisation functions: on N, O, F, S and Cl it gives alpha 8-31% low against aug-cc-pVTZ,
    # aug-pcseg-1 there 0.3-9% (benchmarks/basis_check.py --preset smoke); C and H keep aug-pcseg-0 for the time
    qm=QMSettings(functional="b3lyp", basis="aug-pcseg-0",
                  element_basis={**{el: "aug-pcseg-1" for el in POLARISED_ELEMENTS}, "I": "def2-svpd"},
                  grid_level=0, response_grid_level=0,
                  scf_conv_tol=1e-7, response_tol=1e-2, response_frozen_core=True, n_conformers=4),
    # The cell (benchmarks/fidelity.py over 7 chemistry classes, benchmarks/RESULTS.md "smoke's cell"): one chain, not
    # two of half the length (chain ends carry free volume: rho(M) = rho_inf - K / M_n); the 21-step's rows 1 ps, not
    # 0.2 ps (a 200 fs barostat cannot follow 0.2 ps rows: the cell left the compression still light); Merz-Kollman
    # ESP charges, not Gasteiger (which under-bind esters and acids). Mean density error -10.2% -> -4.6%.
    md=MDSettings(
        n_chains=1,
        atoms_per_chain=300,
        kspace_accuracy=1e-4,
        relax_steps=1000,
        heat_steps=1000,
        compress_steps=2000,
        eq21_steps=((500, 500, 500),) * 6 + ((500, 500, 5000),),
        eq21_time_step=2.0,
        eq21_npt_neighbor_check=True,
        sampling_steps=3000,
        sampling_time_step=2.0,
        barostat_damping=200.0,
        barostat_drag=1.0,
        thermo_freq=10,
        dump_freq=1000,
        restart_freq=1000,
        analysis_init=150,
        analysis_width=150,
        max_additional_runs=0,
        require_equilibrium=False,
        nematic_order_max=1.0,  # a one-chain cell is too small for an orientation verdict
    ),
)


QUICK = ProtocolPreset(
    name="quick",
    description="Workstation run: ~2,000 atoms (4 chains), the 21-step at 1/20 of RadonPy's length and 100 ps NPT "
                "sampling, both at 2 fs with SHAKE; CAM-B3LYP polarizabilities of the H-capped unit less H2 on the MMFF "
                "geometry, aug-cc-pVDZ with 6-31+G(d,p) on carbon (alpha_D -0.5 to -0.9% and dispersion ratio within "
                "0.5% of aug-cc-pVTZ for the PS, TPX and PMMA units; polycarbonate's unit 229 s on 2 cores; with "
                "PySCF's XC kernel 350 s against 462 s in aug-cc-pVDZ; 6-31+G(d,p) throughout was 2.0-3.5% low for "
                "the units and 7-22% for small F, S, Cl and O molecules), grid level 0, "
                "SCF to 1e-7 Eh, response residual 1e-2 (alpha within 2e-5), core orbitals frozen in the response.",
    qm=QMSettings(functional="cam-b3lyp", basis="aug-cc-pvdz", element_basis={"C": "6-31+g(d,p)", "I": "def2-svpd"},
                  cap="hydrogen",
                  auxbasis="def2-universal-jkfit", grid_level=0,
                  response_grid_level=0, scf_conv_tol=1e-7, response_tol=1e-2, response_frozen_core=True,
                  n_conformers=10, memory_mb=16000),
    md=MDSettings(
        n_chains=4,
        atoms_per_chain=500,
        kspace_accuracy=1e-5,
        relax_steps=5000,
        heat_steps=50_000,
        compress_steps=50_000,
        eq21_steps=tuple((a // 20, b // 20, c // 20) for a, b, c in MDSettings().eq21_steps),
        eq21_time_step=2.0,
        eq21_npt_neighbor_check=True,
        sampling_steps=50_000,
        sampling_time_step=2.0,
        thermo_freq=50,
        analysis_init=500,
        analysis_width=500,
        convergence_scale=4.5,  # sqrt(10,000 / 2,000 atoms x 2,000 / 500 rows)
        max_additional_runs=2,
    ),
)

FULL = ProtocolPreset(
    name="full",
    description="RadonPy's published MD protocol: 10 chains x ~1,000 atoms, PPPM 1e-6, EQ21step, 5 ns NPT; "
                "CAM-B3LYP/heavy-aug-cc-pVDZ (cc-pVDZ on H) polarizabilities (alpha_D +0.2% and dispersion ratio -0.1% "
                "against aug-cc-pVTZ for polystyrene) on a B3LYP/6-31G(d,p) geometry converged to Gaussian's loose "
                "criteria (alpha within 0.01% of geomeTRIC's default criteria's, in fewer steps), PySCF's default grid "
                "(level 3; the response kernel on level 1), core orbitals frozen in the response.",
    qm=QMSettings(basis="aug-cc-pvdz", element_basis={"H": "cc-pvdz", "I": "def2-svpd"}, optimize_geometry=True,
                  opt_convergence="loose", response_grid_level=1, response_tol=1e-4, response_frozen_core=True,
                  memory_mb=16000),
)

BUILTIN_PRESETS: dict[str, ProtocolPreset] = {p.name: p for p in (SMOKE, QUICK, FULL)}


class PresetError(ConfigError):
    """A preset name or file that cannot be used; the message is one line."""


def load_preset(name_or_path: str | Path, base: Path | None = None) -> ProtocolPreset:
    """A built-in preset by name, or one read from a YAML file (a relative path is taken from ``base``,
    the directory of the file that names it, else the current directory)."""
    key = str(name_or_path)
    if key in BUILTIN_PRESETS:
        return BUILTIN_PRESETS[key]
    path = Path(key).expanduser()
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    if not path.is_file():
        raise PresetError(f"unknown preset {key!r}: use one of {sorted(BUILTIN_PRESETS)} or a YAML file path")
    data = load_yaml_mapping(path, "preset")
    try:
        return ProtocolPreset.model_validate(data)
    except ValidationError as exc:
        raise PresetError(f"preset file {path}: {one_line(exc)}") from None
