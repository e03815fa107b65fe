"""Seeded CDR workload of the paper's sec. 6.1.2: predefined profile types, Zipf-sized customer
groups, Gaussian spread, and per-type shifts.

Why synthetic: the partitioner's qualities are scored against known clusters, and the paper's
trends (vs N, alpha, Z, types, k, sd) need a generator whose knobs are exactly those.
  - a profile type gives each feature group a probability vector over its values, a call-rate
    multiplier (so processing load and customer count differ, as in Fig. 1), a shift direction
    (another probability vector) and a shift probability per time step;
  - customers pick a type with P(rank r) ~ 1 / r^Z;
  - a customer's probabilities are the type's, times (1 + spread * N(0, 1)) attribute by
    attribute (sd = spread x mean), clipped at a small floor and renormalised per group;
  - each CDR draws one value per group from its caller's probabilities; callers are drawn in
    proportion to their rate, so exactly n_cdrs CDRs come out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.partitioning.profiles import TELCO, Schema


@dataclass(frozen=True)
class WorkloadParams:
    n_nodes: int = 16
    customers_per_node: int = 1000
    cdrs_per_node: int = 100_000
    n_types: int = 6
    zipf: float = 1.0
    spread: float = 0.1  # sd = spread x mean
    duration_s: float = 7 * 86400.0
    shift_probability: float = 0.0  # per customer and time step, for every type (0: no shifts)
    shift_step: float = 0.5  # a shift moves this fraction of the way to the type's direction
    seed: int = 1

    @property
    def n_customers(self) -> int:
        return self.n_nodes * self.customers_per_node

    @property
    def n_cdrs(self) -> int:
        return self.n_nodes * self.cdrs_per_node


@dataclass(frozen=True)
class ProfileTypes:
    probs: np.ndarray  # (T, D) per-group probabilities
    rates: np.ndarray  # (T,) call-rate multipliers
    direction: np.ndarray  # (T, D) where a shifting customer of the type heads
    shift_probability: np.ndarray  # (T,)


@dataclass(frozen=True)
class Cdrs:
    customer: np.ndarray  # (n,) int
    ts: np.ndarray  # (n,) float seconds, sorted
    values: np.ndarray  # (n, groups) value index per feature group


def normalise(p: np.ndarray, schema: Schema) -> np.ndarray:
    group = schema.group_of_dim()
    out = np.array(p, dtype=float)
    for g in range(len(schema.groups)):
        cols = group == g
        out[..., cols] /= out[..., cols].sum(axis=-1, keepdims=True)
    return out


def make_types(n_types: int, rng: np.random.Generator, schema: Schema = TELCO,
               concentration: float = 0.6, min_distance: float = 0.45, shift_probability: float = 0.0) -> ProfileTypes:
    """Distinct types: Dirichlet draws per group, redrawn while closer than min_distance to an earlier one."""
    if n_types < 1:
        raise ValueError("need at least one profile type")
    probs: list[np.ndarray] = []
    for _ in range(n_types):  # loop over types (a handful), not profiles
        for _attempt in range(500):
            cand = np.concatenate([rng.dirichlet(np.full(s, concentration)) for s in schema.sizes])
            if all(np.linalg.norm(cand - p) >= min_distance for p in probs):
                break
        probs.append(cand)
    probs_arr = np.asarray(probs)
    rates = rng.uniform(0.5, 2.0, size=n_types)
    direction = np.asarray([np.concatenate([rng.dirichlet(np.full(s, concentration)) for s in schema.sizes])
                            for _ in range(n_types)])
    return ProfileTypes(probs_arr, rates, direction, np.full(n_types, float(shift_probability)))


def zipf_assign(n_customers: int, n_types: int, z: float, rng: np.random.Generator) -> np.ndarray:
    """Type of each customer, P(type of rank r) proportional to 1 / r^z (z = 0: uniform)."""
    w = 1.0 / np.arange(1, n_types + 1) ** float(z)
    return rng.choice(n_types, size=n_customers, p=w / w.sum())


def customer_probs(types: ProfileTypes, assignment: np.ndarray, spread: float, rng: np.random.Generator,
                   schema: Schema = TELCO) -> np.ndarray:
    """Each customer's own probabilities: type mean with Gaussian spread sd = spread x mean."""
    mean = types.probs[assignment]
    noisy = mean * (1.0 + spread * rng.standard_normal(mean.shape))
    return normalise(np.clip(noisy, 1e-4, None), schema)


def generate_cdrs(probs: np.ndarray, rates: np.ndarray, n_cdrs: int, t0: float, t1: float,
                  rng: np.random.Generator, schema: Schema = TELCO) -> Cdrs:
    """n_cdrs CDRs in [t0, t1): callers drawn in proportion to rates, values from their probabilities."""
    w = np.asarray(rates, dtype=float)
    customer = rng.choice(len(w), size=n_cdrs, p=w / w.sum())
    ts = np.sort(rng.uniform(t0, t1, size=n_cdrs))
    values = np.empty((n_cdrs, len(schema.groups)), dtype=np.int8)
    for g, (off, size) in enumerate(zip(schema.offsets, schema.sizes)):  # per feature group
        cum = np.cumsum(probs[customer, off:off + size], axis=1)
        u = rng.random(n_cdrs)[:, None] * cum[:, -1:]
        values[:, g] = np.minimum((u > cum).sum(axis=1), size - 1)
    return Cdrs(customer, ts, values)


def shift(probs: np.ndarray, types: ProfileTypes, assignment: np.ndarray, step: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One time step of shifts: each customer shifts with its type's probability, moving `step` of
    the way toward the type's direction. Returns (new probabilities, mask of who shifted)."""
    moved = rng.random(len(assignment)) < types.shift_probability[assignment]
    out = probs.copy()
    out[moved] += step * (types.direction[assignment[moved]] - out[moved])
    return out, moved


@dataclass
class Workload:
    """A generated customer base: types, each customer's type, rate and probabilities."""

    params: WorkloadParams
    types: ProfileTypes
    assignment: np.ndarray
    rates: np.ndarray
    probs: np.ndarray
    rng: np.random.Generator
    schema: Schema = TELCO

    @classmethod
    def make(cls, params: WorkloadParams, schema: Schema = TELCO) -> "Workload":
        rng = np.random.default_rng(params.seed)
        types = make_types(params.n_types, rng, schema, shift_probability=params.shift_probability)
        assignment = zipf_assign(params.n_customers, params.n_types, params.zipf, rng)
        rates = types.rates[assignment] * rng.lognormal(0.0, 0.3, size=params.n_customers)
        probs = customer_probs(types, assignment, params.spread, rng, schema)
        return cls(params, types, assignment, rates, probs, rng, schema)

    def keys(self) -> list[str]:
        return [f"c{i:07d}" for i in range(self.params.n_customers)]

    def cdrs(self, n_cdrs: int, t0: float, t1: float) -> Cdrs:
        return generate_cdrs(self.probs, self.rates, n_cdrs, t0, t1, self.rng, self.schema)

    def step_shifts(self) -> np.ndarray:
        self.probs, moved = shift(self.probs, self.types, self.assignment, self.params.shift_step, self.rng)
        return moved
