"""LAMMPS inputs of the MD stage, as RadonPy's EQ21step protocol writes them, with the preset's numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from workflow.job.md_cell import _radonpy
from workflow.job.presets import SimulationSettings


def lammps_number(x: float) -> str:
    """A number as RadonPy writes it in LAMMPS inputs (``1e-6``, not ``1e-06``)."""
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:g}").replace("e+", "e")


class LammpsInputs:
    """The three LAMMPS inputs of a cell (packing, Larsen's 21-step, NPT sampling), built by RadonPy from the
    preset's :class:`~workflow.job.presets.SimulationSettings`; writes files, runs nothing."""

    def __init__(self, work_dir: Path, settings: SimulationSettings):
        self.work_dir = Path(work_dir)
        self.settings = settings

    def preset(self, cell):
        *_, eq = _radonpy()
        return eq.EQ21step(cell, work_dir=str(self.work_dir), kspace_style_accuracy=lammps_number(self.settings.kspace_accuracy))

    def packing_md(self, cell, preset):
        """RadonPy's EQ21step packing with the preset's step counts (RadonPy hard-codes 2x10^6)."""
        calc, const, _poly, _utils, _ff, _lammps, MD, _eq = _radonpy()
        s = self.settings
        mass = calc.mol_mass(cell)
        f_length = np.cbrt((mass / const.NA) / (s.pack_density / const.cm2ang**3)) / 2
        md = MD()
        md.pair_style = "lj/cut"
        md.cutoff_in = 3.0
        md.cutoff_out = ""
        md.kspace_style = "none"
        md.kspace_style_accuracy = ""
        md.bond_style = preset.bond_style
        md.angle_style = preset.angle_style
        md.dihedral_style = preset.dihedral_style
        md.improper_style = preset.improper_style
        md.log_file = preset.log_file1
        md.dat_file = preset.dat_file1
        md.dump_file = preset.dump_file1
        md.xtc_file = preset.xtc_file1
        md.rst = True
        md.outstr = preset.last_str1
        md.write_data = preset.last_data1
        md.add.append("comm_modify cutoff 8.000000")
        md.add_min(min_style="cg")
        md.add_md("nvt", s.relax_steps, time_step=0.1, shake=False, t_start=300.0, t_stop=300.0)
        md.add_md("nvt", s.heat_steps, time_step=1.0, shake=True, t_start=300.0, t_stop=s.max_temp)
        md.add_md("nvt", s.compress_steps, time_step=1.0, shake=True, t_start=s.max_temp, t_stop=s.max_temp)
        md.wf[-1].add_deform(dftype="final", deform_fin_lo=-f_length, deform_fin_hi=f_length, axis="xyz")
        return self._with_output_freq(md)

    def eq21_md(self, preset):
        s = self.settings
        md = preset.eq21step(temp=s.temp, max_temp=s.eq21_max_temp, press=s.press, max_press=s.max_press,
                             step_list=[list(row) for row in s.eq21_steps], time_step=s.eq21_time_step,
                             set_init_velocity=True)
        every = s.neighbor_every
        for wf in md.wf:  # each row sets its own neighbour checks (NVT: check yes; NPT: check no, every step)
            wf.add = [re.sub(r"^neigh_modify delay 0 every 1 check (yes|no)$",
                             lambda m: f"neigh_modify delay 0 every {every} check "
                                       f"{'yes' if s.eq21_npt_neighbor_check else m.group(1)}", line)
                      for line in wf.add]
        return self._with_output_freq(md)

    def sampling_md(self, preset):
        return self.sampling(preset.sampling)

    def sampling(self, make):
        """An NPT sampling run (RadonPy's ``sampling`` of ``eq`` or ``Additional``) at the preset's time step."""
        s = self.settings
        md = make(temp=s.temp, press=s.press, step=s.sampling_steps)
        for wf in md.wf:  # RadonPy writes 1 fs
            wf.time_step = s.sampling_time_step
        return self._with_output_freq(md)

    def _with_output_freq(self, md):
        md.thermo_freq = self.settings.thermo_freq
        md.dump_freq = self.settings.dump_freq
        md.rst_freq = self.settings.restart_freq
        md.neigh_modify = f"delay 0 every {self.settings.neighbor_every} check yes"
        for wf in md.wf:
            if wf.type == "md" and wf.ensemble in ("npt", "nph"):
                wf.p_dump = self.settings.barostat_damping
        return md

    def make_input(self, lmp, md, file_name: str) -> None:
        """RadonPy writes the input; the preset's barostat drag is added to its Nose-Hoover NPT lines."""
        lmp.make_input(md, file_name=file_name)
        drag = self.settings.barostat_drag
        if drag > 0:
            path = self.work_dir / file_name
            path.write_text(re.sub(r"^(fix \S+ all npt .*?)[ \t]*$", lambda m: f"{m.group(1)} drag {drag:g}",
                                   path.read_text(), flags=re.M))
