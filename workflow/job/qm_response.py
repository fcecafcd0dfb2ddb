"""Linear response (RPA/TDDFT) of a converged SCF: the polarizability tensors at several frequencies at once.

One paired subspace for all frequencies and field directions (:class:`LinearResponse`). With density fitting
(the presets' default) the response kernel's exchange is built in the occupied-virtual block from the fitted
3-index integrals (:class:`_DFKernel`), and the XC kernel is contracted from the orbitals' values on the grid
(:class:`_OrbitalXCKernel`), which may be coarser than the SCF's (``response_grid_level``). Both agree with
PySCF's own response functions and with pyscf-properties (tested)."""

from __future__ import annotations

import contextlib

import numpy as np

from workflow.job.qm_scf import QMError


def trial_densities(x: np.ndarray, orbo: np.ndarray, orbv: np.ndarray, symmetric: bool) -> np.ndarray:
    """AO densities D + D^T (symmetric) or D - D^T of ``n x occ x vir`` trial vectors, D = 2 C_v X^T C_o^T."""
    d = np.einsum("xov,pv,qo->xpq", x, orbv, orbo * 2, optimize=True)
    return d + d.transpose(0, 2, 1) if symmetric else d - d.transpose(0, 2, 1)


class LinearResponse:
    """The linear-response equations of a converged closed-shell SCF, for several frequencies at once.

    With X and Y the excitation and de-excitation amplitudes, s = (X + Y)/2 and a = (X - Y)/2 solve

        (A + B) s - w a = V,    (A - B) a = w s,    alpha(w) = 4 V.s

    (A + B) acts on symmetric densities (Coulomb, exchange, XC kernel), A - B on antisymmetric ones
    (exchange only; the orbital-energy differences for a pure functional). All frequencies and the
    three field directions share one subspace for s and one for a (Galerkin projection), grown by
    the residuals preconditioned with the orbital-energy differences; each product of the response
    operator is computed once and serves every frequency.
    """

    def __init__(self, mf, grid_level: int | None = None, frozen_core: bool = False,
                 exchange_store: str = "auto"):
        if grid_level is not None and hasattr(mf, "grids") and grid_level != mf.grids.level:
            from pyscf import dft

            mf = mf.copy()  # the XC kernel on a coarser grid than the SCF (the same orbitals)
            mf.grids = dft.gen_grid.Grids(mf.mol)
            mf.grids.level = grid_level
            mf.grids.build()
        occupied = np.flatnonzero(mf.mo_occ == 2)
        self.n_frozen = 0
        if frozen_core:  # core orbitals (1s of C/N/O/F, up to 2p of Si-Cl, ...) do not respond to the field
            from pyscf.data.elements import chemcore

            self.n_frozen = int(chemcore(mf.mol))
        active, mask_v = occupied[self.n_frozen:], mf.mo_occ == 0
        self.orbo, self.orbv = mf.mo_coeff[:, active], mf.mo_coeff[:, mask_v]
        self.nocc, self.nvir = self.orbo.shape[1], self.orbv.shape[1]
        self.e_ia = (mf.mo_energy[mask_v][None, :] - mf.mo_energy[active][:, None]).ravel()
        with mf.mol.with_common_orig(np.zeros(3)):
            r = mf.mol.intor_symmetric("int1e_r", comp=3)
        self.v = np.einsum("xpq,pi,qa->xia", r, self.orbo, self.orbv, optimize=True).reshape(3, -1)
        self._df = None
        if getattr(mf, "with_df", None) is not None:
            self._df = _DFKernel(mf, self.orbo, self.orbv, exchange_store)
        else:  # exact integrals: PySCF's response functions
            self._resp_sym = mf.gen_response(singlet=True, hermi=1)
            hybrid = hasattr(mf, "xc") and mf._numint.libxc.is_hybrid_xc(mf.xc)
            self._resp_anti = mf.gen_response(singlet=True, hermi=2) if hybrid or not hasattr(mf, "xc") else None
        self.products = 0  # response-operator products computed (one per trial vector)

    def _apply(self, vecs: np.ndarray, symmetric: bool) -> np.ndarray:
        """``(A + B) @ vecs`` (symmetric) or ``(A - B) @ vecs`` for ``n x nov`` trial vectors."""
        from pyscf import lib

        out = vecs * self.e_ia
        if self._df is not None and len(vecs):
            self.products += len(vecs)
            return out + self._df.apply(vecs.reshape(-1, self.nocc, self.nvir), symmetric).reshape(len(vecs), -1)
        resp = self._resp_sym if symmetric else self._resp_anti
        if resp is None or not len(vecs):
            return out
        v1 = np.asarray(resp(trial_densities(vecs.reshape(-1, self.nocc, self.nvir), self.orbo, self.orbv, symmetric)))
        self.products += len(vecs)
        return out + lib.einsum("xpq,qo,pv->xov", v1, self.orbo, self.orbv).reshape(len(vecs), -1)

    def solve(self, frequencies_hartree: list[float], tol: float = 1e-5,
              max_cycle: int = 40) -> tuple[np.ndarray, int]:
        """Polarizability tensors at photon energies ``w`` (hartree).

        Returns:
            ``f x 3 x 3`` tensors in bohr^3 and the iterations used; raises QMError when the residual
            (relative to the perturbation) stays above ``tol`` for ``max_cycle`` iterations.
        """
        d, v = self.e_ia, self.v
        ws = [float(w) for w in frequencies_hartree]
        if ws and max(ws) >= d.min():
            raise QMError(f"frequency {max(ws):.4f} Eh is above the lowest orbital gap {d.min():.4f} Eh")
        s_basis, a_basis = _Subspace(self, True), _Subspace(self, False)
        new_s = [d * v / (d**2 - w**2) for w in ws]
        new_a = [w * v / (d**2 - w**2) for w in ws if w]
        norm_v = np.linalg.norm(v, axis=1)
        norm_v[norm_v == 0] = 1.0  # a direction the basis cannot polarise (H2 in STO-3G across its bond): response 0
        prune = _Subspace.PRUNE
        for iteration in range(1, max_cycle + 1):
            while s_basis.extend(new_s, prune) + a_basis.extend(new_a, prune) == 0:
                if prune < 1e-10:
                    raise QMError("response equations stalled: no new direction in the residuals")
                prune *= 1e-3  # every correction lies (nearly) in the subspace: admit smaller new parts
            tensors, residuals, corrections = [], [], []
            for w in ws:
                s, _, rs, ra = self._project(s_basis, a_basis, w)
                tensors.append(4.0 * s @ v.T)
                residuals.append(np.sqrt(np.linalg.norm(rs, axis=1) ** 2 + np.linalg.norm(ra, axis=1) ** 2) / norm_v)
                det = d**2 - w**2
                corrections.append((-(d * rs + w * ra) / det, -(w * rs + d * ra) / det))
            residuals = np.array(residuals)  # frequencies x directions
            worst = float(residuals.max())
            if worst <= tol:
                return np.array(tensors), iteration
            # the subspace grows by the correction of the least converged frequency of each direction:
            # solutions are smooth in w^2, so the frequencies between are carried along
            new_s, new_a = [], []
            for direction in np.flatnonzero(residuals.max(axis=0) > tol):
                k = int(np.argmax(residuals[:, direction]))
                new_s.append(corrections[k][0][direction:direction + 1])
                if ws[k]:
                    new_a.append(corrections[k][1][direction:direction + 1])
        raise QMError(f"response equations did not converge in {max_cycle} iterations (residual {worst:.1e})")

    def _project(self, s_basis: "_Subspace", a_basis: "_Subspace", w: float):
        """The subspace solution at ``w``: ``s, a`` (3 x nov each) and their residuals."""
        bs, hs, ba, ha = s_basis.vectors, s_basis.products, a_basis.vectors, a_basis.products
        ns, na = len(bs), len(ba)
        m = np.zeros((ns + na, ns + na))
        m[:ns, :ns] = bs @ hs.T
        if na and w:
            m[ns:, ns:] = ba @ ha.T
            m[:ns, ns:] = -w * bs @ ba.T
            m[ns:, :ns] = m[:ns, ns:].T
        else:
            na = 0
            m = m[:ns, :ns]
        m = 0.5 * (m + m.T)
        rhs = np.zeros((ns + na, 3))
        rhs[:ns] = bs @ self.v.T
        c = np.linalg.solve(m, rhs)
        cs, ca = c[:ns].T, c[ns:].T
        s = cs @ bs
        a = ca @ ba if na else np.zeros_like(s)
        rs = cs @ hs - w * a - self.v
        ra = (ca @ ha if na else np.zeros_like(s)) - w * s
        return s, a, rs, ra


class _DFKernel:
    """The response kernel's occupied-virtual block for density-fitted integrals, B^P_mn = (mn|P).

    For a trial vector X (occ x vir) the density is D +- D^T with D = 2 C_v X^T C_o^T, and the
    exchange block is

        C_o^T K C_v = 2 sum_P [ B^P_ov X^T B^P_ov +- (B^P_oo X) B^P_vv ],

    so no AO-basis exchange matrix is formed (the Coulomb and XC terms only enter symmetric
    densities). ``exchange_store`` says where B^P_vv comes from:

    - ``"mo"``: transformed once and kept in single precision (naux*nvir^2*4 bytes per exchange
      kernel); the cost per vector is naux*nocc*nvir^2. Single precision changes alpha by ~1e-8
      relative (tested), far below the response tolerance.
    - ``"ao"``: X B^P_vv = R^T B^P C_v (R = C_v X^T) from the AO tensors at every product
      (naux*nao^2*nocc per vector; the AO tensors kept where they fit in half of ``max_memory``,
      else recomputed).
    - ``"auto"``: ``"mo"`` where its store fits in 80% of what the SCF's ``max_memory`` leaves free.
    """

    def __init__(self, mf, orbo: np.ndarray, orbv: np.ndarray, exchange_store: str = "auto"):
        from pyscf import lib

        self.mf, self.orbo, self.orbv = mf, orbo, orbv
        self.xc_on_grid = None
        if hasattr(mf, "xc"):
            ni = mf._numint
            omega, alpha, hyb = ni.rsh_and_hybrid_coeff(mf.xc, mf.mol.spin)
            self.xc_kernel = ni.cache_xc_kernel(mf.mol, mf.grids, mf.xc, mf.mo_coeff, mf.mo_occ, 1)
            fxc = self.xc_kernel[2]
            if _OrbitalXCKernel.handles(ni._xc_type(mf.xc)):
                # the singlet kernel, halved as PySCF's nr_rks_fxc_st is given it (see ``_xc``); the orbitals'
                # values kept in up to a quarter of what the SCF's max_memory leaves free
                keep_mb = 0.25 * max(mf.max_memory - lib.current_memory()[0], 0.0)
                self.xc_on_grid = _OrbitalXCKernel(mf, orbo, orbv, 0.5 * (fxc[0, :, 0] + fxc[0, :, 1]), keep_mb)
        else:  # Hartree-Fock
            omega, alpha, hyb = 0.0, 0.0, 1.0
            self.xc_kernel = None
        # exchange kernels: (coefficient, range-separation omega; 0 for the full Coulomb operator)
        if omega == 0:
            self.exchange = [(hyb, 0.0)] if hyb else []
        elif alpha == 0:
            self.exchange = [(hyb, -omega)]
        elif hyb == 0:
            self.exchange = [(alpha, omega)]
        else:
            self.exchange = [(hyb, 0.0), (alpha - hyb, omega)]
        nvir = orbv.shape[1]
        naux = mf.with_df.get_naoaux()
        if exchange_store == "auto":
            mo_mb = naux * nvir * nvir * 4 * len(self.exchange) / 1e6
            exchange_store = "mo" if mo_mb < 0.8 * (mf.max_memory - lib.current_memory()[0]) else "ao"
        if exchange_store not in ("mo", "ao"):
            raise ValueError(f"exchange_store must be 'mo', 'ao' or 'auto', not {exchange_store!r}")
        self.store = exchange_store
        self.b_ov, self.b_oo, self.b_vv = {}, {}, {}
        self._kept: dict[float, list[np.ndarray]] = {}
        self._omegas = {0.0} | {om for _, om in self.exchange}  # Coulomb (J) and each exchange kernel
        for om in self._omegas:
            ov, oo, vv = [], [], []
            keep_vv = self.store == "mo" and any(om == o for _, o in self.exchange)
            for b in self._blocks(om):
                bv = b @ orbv  # (P, nao, vir)
                ov.append(np.matmul(orbo.T, bv))
                oo.append(np.matmul(orbo.T, b @ orbo))
                if keep_vv:
                    vv.append(np.matmul(orbv.T, bv).astype(np.float32))
            self.b_ov[om], self.b_oo[om] = np.concatenate(ov), np.concatenate(oo)
            if keep_vv:
                self.b_vv[om] = vv

    def _blocks(self, omega: float):
        """The unpacked 3-index tensors ``(naux_block, nao, nao)`` of the Coulomb operator (range-separated
        by ``omega`` when not 0); kept in memory after the first pass for the ``"ao"`` store where they fit in
        half of the SCF's ``max_memory``."""
        from pyscf import lib

        if omega in self._kept:
            yield from self._kept[omega]
            return
        nao = self.mf.mol.nao
        keep = self.store == "ao" and (self.mf.with_df.get_naoaux() * nao * nao * 8 / 1e6
                                       < 0.5 * self.mf.max_memory / len(self._omegas))
        kept = []
        with contextlib.ExitStack() as stack:
            with_df = self.mf.with_df if omega == 0 else stack.enter_context(self.mf.with_df.range_coulomb(omega))
            for cderi in with_df.loop():
                b = lib.unpack_tril(cderi)
                if keep:
                    kept.append(b)
                yield b
        if keep:
            self._kept[omega] = kept

    def _exchange(self, x: np.ndarray, omega: float, sign: float) -> np.ndarray:
        """``C_o^T K[D + sign D^T] C_v`` for ``n x occ x vir`` vectors (see the class)."""
        b_ov, b_oo = self.b_ov[omega], self.b_oo[omega]
        n, nocc, nvir = x.shape
        z = np.einsum("pov,xqv->pxoq", b_ov, x, optimize=True)
        k = np.einsum("pxoq,pqv->xov", z, b_ov, optimize=True)
        if self.store == "mo":
            start = 0
            for b_vv in self.b_vv[omega]:
                nblk = b_vv.shape[0]
                w = np.einsum("poq,xqv->xopv", b_oo[start:start + nblk], x, optimize=True).astype(np.float32)
                k += sign * (w.reshape(n * nocc, nblk * nvir) @ b_vv.reshape(nblk * nvir, nvir)).reshape(n, nocc, nvir)
                start += nblk
            return 2.0 * k
        r = np.einsum("mv,xov->mxo", self.orbv, x, optimize=True).reshape(self.orbv.shape[0], n * nocc)
        start = 0
        for b in self._blocks(omega):
            nblk = b.shape[0]
            br = (b.reshape(-1, b.shape[2]) @ r).reshape(nblk, b.shape[1], n, nocc)  # B^P R, R = C_v X^T
            y = np.einsum("pmxo,mv->pxov", br, self.orbv, optimize=True)  # R^T B^P C_v = X B^P_vv
            k += sign * np.einsum("poq,pxqv->xov", b_oo[start:start + nblk], y, optimize=True)
            start += nblk
        return 2.0 * k

    def apply(self, x: np.ndarray, symmetric: bool) -> np.ndarray:
        """The kernel's part of ``(A + B) x`` (symmetric) or ``(A - B) x``; ``n x occ x vir`` in and out."""
        v1 = np.zeros_like(x)
        sign = 1.0 if symmetric else -1.0
        for coefficient, omega in self.exchange:
            # v1 = J - K/2 for the AO matrix; projected as PySCF's response vectors are (C_v^T v1 C_o)^T
            v1 -= 0.5 * coefficient * sign * self._exchange(x, omega, sign)
        if not symmetric:
            return v1
        b_ov = self.b_ov[0.0]
        rho = 4.0 * np.einsum("pov,xov->xp", b_ov, x, optimize=True)  # tr(B^P dm)
        v1 += np.einsum("pov,xp->xov", b_ov, rho, optimize=True)
        if self.xc_kernel is not None:
            v1 += self._xc(x)
        return v1

    def _xc(self, x: np.ndarray) -> np.ndarray:
        if self.xc_on_grid is not None:
            return self.xc_on_grid.apply(x)
        mf, (rho0, vxc, fxc) = self.mf, self.xc_kernel
        dm = trial_densities(x, self.orbo, self.orbv, symmetric=True)
        v = mf._numint.nr_rks_fxc_st(mf.mol, mf.grids, mf.xc, None, dm, 1, True, rho0, vxc, fxc * 0.5)
        return np.einsum("xpq,po,qv->xov", np.asarray(v), self.orbo, self.orbv, optimize=True)


class _OrbitalXCKernel:
    """The XC kernel's occupied-virtual block from the orbitals' values on the grid (LDA and GGA).

    For a trial vector X (occ x vir) the symmetric density is rho1 = 4 sum_ia X_ia phi_i phi_a (and its
    gradient for a GGA), and the kernel's block is

        K_ia = sum_g sum_x w_x(g) d_x(phi_i phi_a)(g),    w(g) = weight(g) f(g) rho1(g)

    with ``x`` the value and the three gradient components and f the singlet kernel. Working with the
    orbitals instead of the AO density matrices costs occ*vir per grid point and vector, not nao^2
    (PySCF's ``nr_rks_fxc``, the reference it is tested against). The orbitals' values (and
    gradients), (occ + vir) x 4 doubles per grid point, are computed once and kept for as many grid
    blocks as the memory allows; the other blocks' are computed again at every product.
    """

    BLOCK = 4000  # grid points per block

    def __init__(self, mf, orbo: np.ndarray, orbv: np.ndarray, fxc: np.ndarray, keep_mb: float):
        """``fxc``: the singlet kernel ``nvar x nvar x ngrids`` (nvar 1 for LDA, 4 for GGA); the orbitals' values
        of as many grid blocks as fit in ``keep_mb`` are computed once and kept, the others at every product."""
        self.mf, self.orbo, self.orbv = mf, orbo, orbv
        self.deriv = 0 if fxc.shape[0] == 1 else 1
        self.fxc, weights = fxc, mf.grids.weights
        block_mb = fxc.shape[0] * self.BLOCK * (orbo.shape[1] + orbv.shape[1]) * 8 / 1e6
        n_kept = int(keep_mb // block_mb)
        self.blocks = []  # (first point, end, the occupied and virtual orbitals' values or None)
        for number, p0 in enumerate(range(0, weights.size, self.BLOCK)):
            p1 = min(p0 + self.BLOCK, weights.size)
            self.blocks.append((p0, p1, self._orbitals(p0, p1) if number < n_kept else None))
        self.kept_fraction = sum(b[2] is not None for b in self.blocks) / max(len(self.blocks), 1)

    def _orbitals(self, p0: int, p1: int) -> tuple[np.ndarray, np.ndarray]:
        """The active occupied and the virtual orbitals' values (and gradients) at grid points ``p0:p1``:
        ``nvar x points x occ`` and ``nvar x points x vir``."""
        ni, coords = self.mf._numint, self.mf.grids.coords[p0:p1]
        ao = np.asarray(ni.eval_ao(self.mf.mol, coords, deriv=self.deriv)).reshape(self.deriv * 3 + 1, p1 - p0, -1)
        return ao @ self.orbo, ao @ self.orbv

    @staticmethod
    def handles(xc_type: str) -> bool:
        """LDA and GGA kernels (a meta-GGA's goes through PySCF's ``nr_rks_fxc``)."""
        return xc_type in ("LDA", "GGA")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``n x occ x vir`` vectors in, the kernel's ``n x occ x vir`` block out."""
        out = np.zeros_like(x)
        for p0, p1, kept in self.blocks:
            phi_o, phi_v = kept if kept is not None else self._orbitals(p0, p1)
            f = self.fxc[:, :, p0:p1] * self.mf.grids.weights[p0:p1]
            t = np.einsum("xgv,nov->nxgo", phi_v, x, optimize=True)  # sum_a X_ia d_x phi_a
            rho1 = np.empty((len(x), len(f), phi_o.shape[1]))
            rho1[:, 0] = 4.0 * np.einsum("go,ngo->ng", phi_o[0], t[:, 0])
            for k in range(1, len(f)):  # the gradient of phi_i phi_a
                rho1[:, k] = 4.0 * (np.einsum("go,ngo->ng", phi_o[k], t[:, 0])
                                    + np.einsum("go,ngo->ng", phi_o[0], t[:, k]))
            wv = np.einsum("nyg,xyg->nxg", rho1, f)
            u = np.empty_like(t)  # d_x(phi_i phi_a) w_x, sorted by which factor carries the derivative
            u[:, 0] = np.einsum("nxg,xgo->ngo", wv, phi_o)
            for k in range(1, len(f)):
                u[:, k] = wv[:, k, :, None] * phi_o[0]
            out += np.einsum("nxgo,xgv->nov", u, phi_v, optimize=True)
        return out


class _Subspace:
    """Orthonormal trial vectors and the response operator's products with them."""

    PRUNE = 1e-3  # a normalised candidate adding less than this new direction is left out

    def __init__(self, response: LinearResponse, symmetric: bool):
        self.response, self.symmetric = response, symmetric
        n = response.nocc * response.nvir
        self.vectors, self.products = np.zeros((0, n)), np.zeros((0, n))

    def extend(self, candidates: list[np.ndarray], prune: float = PRUNE) -> int:
        """Add the new directions of ``candidates`` (normalised parts below ``prune`` left out); returns how many."""
        if not candidates:
            return 0
        c = np.concatenate(candidates)
        norms = np.linalg.norm(c, axis=1, keepdims=True)
        c = c[norms[:, 0] > 0] / norms[norms[:, 0] > 0]
        for _ in range(2):  # Gram-Schmidt against the basis, twice for stability
            c -= (c @ self.vectors.T) @ self.vectors
        _, sv, vt = np.linalg.svd(c, full_matrices=False)
        new = vt[sv > prune]
        if not len(new):
            return 0
        new -= (new @ self.vectors.T) @ self.vectors
        new /= np.linalg.norm(new, axis=1, keepdims=True)
        self.vectors = np.concatenate([self.vectors, new])
        self.products = np.concatenate([self.products, self.response._apply(new, self.symmetric)])
        return len(new)


def response_polarizability(mf, frequencies_hartree: list[float], tol: float = 1e-5,
                            max_cycle: int = 40) -> tuple[np.ndarray, int]:
    """Polarizability tensors alpha(w) for a converged closed-shell SCF (see :class:`LinearResponse`).

    Args:
        mf: converged PySCF RHF/RKS object.
        frequencies_hartree: ``f`` photon energies (0.0 for the static limit).

    Returns:
        ``f x 3 x 3`` tensors in bohr^3 (atomic units), and the iterations used.
    """
    return LinearResponse(mf).solve(frequencies_hartree, tol, max_cycle)


# the molecule a cap's contribution is taken from: the two caps and the bond that joins them (name, SMILES)
