"""The 170-d force-field kernel-mean descriptor (RadonPy ``FF_descriptor``, GAFF2_mod, Gasteiger).

RadonPy evaluates it on a cyclic 10-mer (``ffkm_mp(cyclic=10)``), which never finishes for some
aromatic backbones. The kernel mean is an average over the atoms, bonds, angles and dihedrals of the
ring, and every unit of a cyclic n-mer sees the same neighbourhood, so a smaller ring gives the same
numbers wherever GAFF2_mod types its atoms as it types the 10-mer's. :func:`oligomer_size` says where
that holds (tested against RadonPy's own ``cyclic=10`` for each class, ``tests/test_descriptor.py``):

- a saturated backbone of two or more atoms per unit: the trimer (a 6-membered or larger ring of
  single bonds types as the chain does);
- one backbone atom per unit (both links on one atom): the 10-mer itself; its trimer is a cyclopropane;
- a conjugated backbone ring (a double or triple bond on the backbone path: polyacetylenes,
  polyphosphazenes; or a path conjugated from link to link: polyphenylenes, polythiophenes, ladder-like
  heteroaromatics): the smallest n with n = 2 (mod 4) whose ring is larger than 14 atoms, GAFF2's
  largest "ring" (``max_ring_size``). A polyacetylene trimer is benzene; with n = 2 (mod 4) the ring's
  pi-electron count has the 10-mer's 4N / 4N+2 character, so RDKit's aromaticity of the macrocycle (which
  decides, for example, GAFF2's biphenyl types cp/cq) is the 10-mer's.

Why RadonPy hangs: ``make_cyclicpolymer`` closes the ring and re-perceives aromaticity, and
GAFF2_mod's ``ff_assign`` then kekulizes the whole macrocycle. RDKit kekulizes each fused ring
system at once, and the macrocycle fuses every unit's rings into one system: the search grows
exponentially with the units (a pyromellitimide trimer: minutes, a cyclic 10-mer: never).
:func:`cyclic_oligomer` builds the same molecule with RadonPy's helpers but kekulizes the
*linear* n-mer before closing the ring and leaves aromaticity to ``ff_assign`` (MDL model, as
RadonPy does), so its kekulization is a no-op; the hybridization Gasteiger reads is perceived as
RadonPy's sanitization perceives it (RDKit's default aromaticity: a thiophene S is sp2).

:func:`featurize` runs polymers in parallel worker processes with a per-polymer time limit (a
polymer over the limit is reported and skipped, its worker replaced) and a persistent SQLite
cache keyed by canonical PSMILES plus the descriptor settings.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import sqlite3
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

import numpy as np

N_FEATURES = 170
SETTINGS = {"ff": "GAFF2_mod", "charge": "gasteiger", "polar": False, "nk": 20, "s": 1 / 40,
            "cyclic": "oligomer_size", "version": 2}
GAFF2_MAX_RING = 14  # GAFF2_mod's ``max_ring_size``: atoms in larger rings are typed as chain atoms


def settings_key(settings: dict = SETTINGS) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


_DESCRIPTOR = None


def _descriptor_object():
    global _DESCRIPTOR
    if _DESCRIPTOR is None:
        from radonpy.ff.descriptor import FF_descriptor
        from radonpy.ff.gaff2_mod import GAFF2_mod

        _DESCRIPTOR = FF_descriptor(GAFF2_mod(), polar=SETTINGS["polar"], nk=SETTINGS["nk"], s=SETTINGS["s"])
    return _DESCRIPTOR


def descriptor_names() -> list[str]:
    """The names of the 170 descriptor columns (RadonPy's ``ffkm_desc_names``)."""
    return list(_descriptor_object().ffkm_desc_names())


class DescriptorError(RuntimeError):
    pass


def cyclic_oligomer(psmiles: str, n: int):
    """RadonPy's ``make_cyclicpolymer(psmiles, n, return_mol=True)``, in Kekule form (see above)."""
    from radonpy.core import poly, utils
    from rdkit import Chem

    mol = poly.polymerize_MolFromSmiles(psmiles, n=n, terminal="*")
    if mol is None:
        return None
    Chem.Kekulize(mol, clearAromaticFlags=True)  # linear n-mer: each unit's rings kekulized apart
    poly.set_mainchain_flag(mol)
    poly.set_linker_flag(mol)
    head, tail = mol.GetIntProp("head_idx"), mol.GetIntProp("tail_idx")
    head_ne, tail_ne = mol.GetIntProp("head_ne_idx"), mol.GetIntProp("tail_ne_idx")
    orders = {mol.GetBondBetweenAtoms(head, head_ne).GetBondTypeAsDouble(),
              mol.GetBondBetweenAtoms(tail, tail_ne).GetBondTypeAsDouble()}
    # remove the two link atoms, renumbering as make_cyclicpolymer does, and close the ring
    mol = utils.remove_atom(mol, head)
    tail_after = tail - 1 if tail > head else tail
    mol = utils.remove_atom(mol, tail_after)
    head_ne -= (head_ne > tail) + (head_ne > head)
    tail_ne -= (tail_ne > tail) + (tail_ne > head)
    order = (Chem.BondType.DOUBLE if 2.0 in orders else Chem.BondType.TRIPLE if 3.0 in orders
             else Chem.BondType.SINGLE)
    mol = utils.add_bond(mol, tail_ne, head_ne, order=order)
    F = Chem.SanitizeFlags
    Chem.SanitizeMol(mol, F.SANITIZE_ALL ^ F.SANITIZE_SETAROMATICITY ^ F.SANITIZE_SYMMRINGS)
    Chem.GetSSSR(mol)
    # RadonPy sanitizes its ring with RDKit's default aromaticity, and the hybridization perceived then is what
    # Gasteiger reads (ff_assign re-perceives aromaticity by the MDL model, not the hybridization): a thiophene S
    # is sp2 there, sp3 in the Kekule form. Perceiving aromaticity on a copy does not kekulize anything.
    aromatic = Chem.Mol(mol)
    Chem.SetAromaticity(aromatic)
    Chem.SetConjugation(aromatic)  # sanitization's order: aromaticity, conjugation, hybridization
    Chem.SetHybridization(aromatic)
    for atom, ref in zip(mol.GetAtoms(), aromatic.GetAtoms()):
        atom.SetHybridization(ref.GetHybridization())
    return mol


def backbone(psmiles: str) -> tuple[int, bool]:
    """(atoms per unit on the shortest path between the two links' neighbours, whether the ring it closes is
    conjugated: a double or triple bond outside an aromatic ring on the path or at a link, or every bond of the path
    conjugated between two sp2 or aromatic link atoms)."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(psmiles)
    if mol is None:
        raise DescriptorError(f"RDKit cannot parse {psmiles!r}")
    links = [a for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if len(links) != 2:
        raise DescriptorError(f"{psmiles!r} has {len(links)} links, not 2")
    (a, la), (b, lb) = ((x.GetNeighbors()[0].GetIdx(), x.GetIdx()) for x in links)
    path = list(Chem.GetShortestPath(mol, a, b)) if a != b else [a]
    bonds = [mol.GetBondBetweenAtoms(i, j) for i, j in zip(path, path[1:])]
    bonds += [mol.GetBondBetweenAtoms(a, la), mol.GetBondBetweenAtoms(b, lb)]
    multiple = any(bd.GetBondType() in (Chem.BondType.DOUBLE, Chem.BondType.TRIPLE) and not bd.GetIsAromatic()
                   for bd in bonds)
    conjugated = len(path) > 1 and all(bd.GetIsConjugated() or bd.GetIsAromatic() for bd in bonds[:len(path) - 1]) \
        and all(mol.GetAtomWithIdx(i).GetIsAromatic() or mol.GetAtomWithIdx(i).GetHybridization() == Chem.HybridizationType.SP2
                for i in (a, b))
    return len(path), multiple or conjugated


def oligomer_size(psmiles: str) -> int:
    """The cyclic n-mer whose descriptor equals RadonPy's cyclic 10-mer (see the module's notes)."""
    length, multiple = backbone(psmiles)
    if length == 1:
        return 10
    if not multiple:
        return 3
    n = 2  # a cyclic dimer of a long unit: each unit is bonded to the other at both ends, its neighbourhood unchanged
    while n * length <= GAFF2_MAX_RING:
        n += 4
    return n


def ff_kernel_mean(psmiles: str, cyclic: int | None = None) -> np.ndarray:
    """RadonPy's kernel-mean descriptor of one repeat unit (shape ``170``), on the cyclic ``cyclic``-mer
    (default: :func:`oligomer_size`)."""
    desc = _descriptor_object()
    cyclic = oligomer_size(psmiles) if cyclic is None else cyclic
    mol = cyclic_oligomer(psmiles, n=cyclic)
    if mol is None:
        raise DescriptorError(f"RadonPy cannot make a cyclic {cyclic}-mer of {psmiles!r}")
    if not desc.ff.ff_assign(mol, charge=SETTINGS["charge"]):
        raise DescriptorError(f"GAFF2_mod cannot type {psmiles!r}")
    x = np.asarray(desc.ff_kernel_mean([mol]), dtype=np.float64)
    if x.shape != (N_FEATURES,) or not np.all(np.isfinite(x)):
        raise DescriptorError(f"descriptor of {psmiles!r} is not {N_FEATURES} finite numbers")
    return x


class DescriptorCacheError(ValueError):
    """A descriptor cache that cannot be read or written (corrupt, locked past its timeout); one line."""


class DescriptorCache:
    """SQLite table (settings, canonical PSMILES) -> float64 blob; safe for several readers."""

    def __init__(self, path: str | Path, settings: dict = SETTINGS):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.key = settings_key(settings)
        with self._named():
            self.db = sqlite3.connect(self.path, timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS descriptors (settings TEXT, smiles TEXT, x BLOB, "
                            "PRIMARY KEY (settings, smiles))")

    @contextmanager
    def _named(self):
        """SQLite's errors as :class:`DescriptorCacheError`, naming this file (not the campaign store)."""
        try:
            yield
        except sqlite3.Error as exc:
            hint = ("; it holds only descriptors, which are recomputed: move it aside"
                    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc) else "")
            raise DescriptorCacheError(f"descriptor cache {self.path}: {exc}{hint}") from None

    def get_many(self, smiles: list[str]) -> dict[str, np.ndarray]:
        """The cached descriptors among ``smiles``. The read ends its transaction: a snapshot left open would make
        this connection's next write fail at once (SQLite's stale WAL snapshot) after another process wrote."""
        out: dict[str, np.ndarray] = {}
        with self._named(), self.db:
            cur = self.db.cursor()
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS want (smiles TEXT PRIMARY KEY)")
            cur.execute("DELETE FROM want")
            cur.executemany("INSERT OR IGNORE INTO want VALUES (?)", ((s,) for s in smiles))
            for s, blob in cur.execute("SELECT d.smiles, d.x FROM descriptors d JOIN want w ON d.smiles = w.smiles "
                                       "WHERE d.settings = ?", (self.key,)).fetchall():
                out[s] = np.frombuffer(blob, dtype=np.float64)
        return out

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        with self._named(), self.db:
            self.db.executemany("INSERT OR REPLACE INTO descriptors VALUES (?, ?, ?)",
                                ((self.key, s, np.asarray(x, dtype=np.float64).tobytes()) for s, x in items.items()))

    def close(self) -> None:
        self.db.close()


@dataclass
class Featurized:
    X: np.ndarray  # n x 170, NaN rows where failed
    failures: dict[int, str] = field(default_factory=dict)  # index -> reason
    cached: int = 0
    computed: int = 0
    seconds: float = 0.0


def _die_with_parent() -> None:
    """Linux: a worker stuck in C code is killed when its parent (the forkserver) goes, so a killed
    driver leaves no orphan burning a core."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _worker(conn) -> None:
    from radonpy.core import const

    import signal

    const.print_level = 2  # RadonPy's info lines (empirical parameters used) would flood the terminal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the driver stops us
    _die_with_parent()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if task is None:
            return
        idx, smi = task
        try:
            answer = (idx, ff_kernel_mean(smi), None)
        except Exception as exc:  # RadonPy raises bare Exceptions
            answer = (idx, None, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(answer)
        except OSError:  # BrokenPipeError: the driver stopped while this one computed
            return


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.task: tuple[int, str] | None = None
        self.started = 0.0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()


def _context():
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["surrogate.descriptor", "radonpy.ff.descriptor", "radonpy.core.poly"])
    return ctx


SAVE_EVERY = 100
SAVE_SECONDS = 10.0
"""How often computed descriptors reach the cache while a pool is featurized."""


def _collect(pool: list[_Worker], ctx, timeout_s: float, results: dict[int, np.ndarray],
             failures: dict[int, str]) -> list[int]:
    """Wait up to 0.2 s for the busy workers; file their answers (a dead or overdue worker is replaced and its
    task failed). Returns the indices of the new results."""
    busy = [w for w in pool if w.task is not None]
    ready = wait([w.conn for w in busy], timeout=0.2)
    new = []
    for w in busy:
        if w.conn in ready:
            try:
                idx, x, err = w.conn.recv()
            except (EOFError, OSError):
                idx, x, err = w.task[0], None, "descriptor worker died"
                pool[pool.index(w)] = _Worker(ctx)
            if err is None:
                results[idx] = x
                new.append(idx)
            else:
                failures[idx] = err
            w.task = None
        elif time.monotonic() - w.started > timeout_s:
            failures[w.task[0]] = f"descriptor took longer than {timeout_s:g} s; skipped"
            w.kill()
            pool[pool.index(w)] = _Worker(ctx)
    return new


def _compute(tasks: list[tuple[int, str]], workers: int, timeout_s: float,
             advance: Callable[[int], None] | None,
             save: Callable[[dict[int, np.ndarray]], None] | None = None) -> tuple[dict, dict]:
    """Descriptors of ``tasks`` on ``workers`` processes; ``save`` receives the new results in chunks (every
    :data:`SAVE_EVERY` results or :data:`SAVE_SECONDS`, and what is left when this ends, also by an exception):
    a driver stopped mid-way keeps what it computed."""
    results: dict[int, np.ndarray] = {}
    failures: dict[int, str] = {}
    if not tasks:
        return results, failures
    unsaved: list[int] = []
    last_save = time.monotonic()

    def flush() -> None:
        nonlocal last_save
        if save is not None and unsaved:
            save({i: results[i] for i in unsaved})
        unsaved.clear()
        last_save = time.monotonic()

    ctx = _context()
    pool = [_Worker(ctx) for _ in range(max(1, min(workers, len(tasks))))]
    queue = list(reversed(tasks))
    try:
        while queue or any(w.task for w in pool):
            for w in pool:
                if w.task is None and queue:
                    w.task = queue.pop()
                    w.started = time.monotonic()
                    w.conn.send(w.task)
            before = len(results) + len(failures)
            unsaved += _collect(pool, ctx, timeout_s, results, failures)
            finished = len(results) + len(failures) - before
            if len(unsaved) >= SAVE_EVERY or (unsaved and time.monotonic() - last_save > SAVE_SECONDS):
                flush()
            if advance is not None and finished:
                advance(finished)
    finally:
        flush()
        for w in pool:
            if w.proc.is_alive():
                try:
                    w.conn.send(None)
                except OSError:
                    pass
                w.proc.join(timeout=2)
                if w.proc.is_alive():
                    w.kill()
    return results, failures


def featurize(smiles: list[str], cache_path: str | Path | None = None, workers: int | None = None,
              timeout_s: float = 120.0, advance: Callable[[int], None] | None = None,
              write_cache: bool = True) -> Featurized:
    """Descriptors of canonical PSMILES, from the cache where present, computed in parallel otherwise.

    ``advance(n)`` is called as each ``n`` more polymers are computed (a progress bar's update).
    ``write_cache=False`` reads an existing cache but adds nothing to it (and creates no file).
    """
    t0 = time.monotonic()
    n = len(smiles)
    X = np.full((n, N_FEATURES), np.nan)
    use_cache = cache_path is not None and (write_cache or Path(cache_path).is_file())
    cache = DescriptorCache(cache_path) if use_cache else None
    known = cache.get_many(list(set(smiles))) if cache is not None else {}
    tasks, cached = [], 0
    first_index: dict[str, int] = {}
    for i, s in enumerate(smiles):
        if s in known:
            X[i] = known[s]
            cached += 1
        elif s not in first_index:
            first_index[s] = i
            tasks.append((i, s))
    if advance is not None and len(smiles) - len(tasks):
        advance(len(smiles) - len(tasks))  # from the cache (or repeats)
    save = ((lambda chunk: cache.put_many({smiles[i]: x for i, x in chunk.items()}))
            if cache is not None and write_cache else None)
    try:
        results, failures_first = _compute(tasks, workers or mp.cpu_count(), timeout_s, advance, save)
    finally:
        if cache is not None:
            cache.close()
    new = {smiles[i]: x for i, x in results.items()}
    failures: dict[int, str] = {}
    failed_smiles = {smiles[i]: r for i, r in failures_first.items()}
    for i, s in enumerate(smiles):
        if s in new:
            X[i] = new[s]
        elif s in failed_smiles:
            failures[i] = failed_smiles[s]
    return Featurized(X=X, failures=failures, cached=cached, computed=len(results),
                      seconds=time.monotonic() - t0)
