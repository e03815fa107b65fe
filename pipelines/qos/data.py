"""WS-DREAM format: QoS matrices and the user / service location lists.

Why its own module: every entry point (the CLI, the bench, the Airflow refresh)
reads the same files, and the format has traps worth handling once:

- matrices are tab-separated user x service rows; ``-1`` (any negative value),
  an empty field, ``NaN`` or a short row mean "not observed";
- ``userlist.txt`` / ``wslist.txt`` have a ``[Column]`` header line and a
  ``=====`` line; the columns are found by name, so both the 2010 layout
  (ID, IP, Country, IP No., AS, Latitude, Longitude) and the 2016 one (with
  Continent / Region / City) load;
- ``wslist.txt`` is Latin-1 and two of its rows carry the same service ID, so
  the row position (0-based, after the header lines) is the service index;
- AS or coordinates may be ``null``;
- any file may be gzip-compressed (detected by its magic bytes, not its name).

Missing values are NaN in memory.
"""

from __future__ import annotations

import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The whole file as text, gunzipped when it starts with the gzip magic bytes.

    Undecodable bytes fall back to Latin-1 (wslist.txt is Latin-1; every byte is valid there).
    """
    raw = Path(path).read_bytes()
    if raw[:2] == GZIP_MAGIC:
        raw = gzip.decompress(raw)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_matrix(path: str | Path) -> np.ndarray:
    """A user x service QoS matrix; unobserved cells (negative, empty, NaN, absent) are NaN."""
    import pandas as pd

    lines = [ln for ln in read_text(path).splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: no rows")
    sep = "\t" if "\t" in lines[0] else r"\s+"
    width = max(ln.count("\t") for ln in lines) + 1 if sep == "\t" else max(len(ln.split()) for ln in lines)
    frame = pd.read_csv(io.StringIO("\n".join(lines)), sep=sep, header=None, names=range(width),
                        engine="c" if sep == "\t" else "python")
    bad = [c for c in frame.columns if frame[c].dtype == object]  # stray text: not observed
    for c in bad:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    out = frame.to_numpy(dtype=float)
    # a trailing tab gives an empty last field on every row: drop all-empty trailing columns
    while out.shape[1] > 0 and np.isnan(out[:, -1]).all():
        out = out[:, :-1]
    out[out < 0] = np.nan
    return out


def read_index(path: str | Path) -> np.ndarray:
    """One integer per line: matrix row/column k is dataset index line k (e.g. cloudrank_services.txt)."""
    vals = [int(t.split()[0]) for t in read_text(path).splitlines() if t.strip()]
    return np.asarray(vals, dtype=np.int64)


@dataclass
class Locations:
    """Network location of each node (user or service), by node index.

    ``asn`` and ``country`` are integer codes (-1 = unknown) so that "same AS" is a
    vectorised comparison; the names are kept in ``as_names`` / ``country_names``.
    """

    asn: np.ndarray  # int64, -1 unknown
    country: np.ndarray  # int64, -1 unknown
    lat: np.ndarray  # float, NaN unknown
    lon: np.ndarray
    as_names: list[str]
    country_names: list[str]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.asn)

    def subset(self, index: np.ndarray) -> "Locations":
        """The locations of the nodes `index` (e.g. the services a matrix block covers), in that order."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"location index out of range 0..{len(self) - 1}")
        return Locations(
            asn=self.asn[index], country=self.country[index], lat=self.lat[index], lon=self.lon[index],
            as_names=self.as_names, country_names=self.country_names, ids=[self.ids[i] for i in index],
        )

    @staticmethod
    def unknown(n: int) -> "Locations":
        """n nodes of which nothing is known (the location weight then falls back to everyone)."""
        return Locations(
            asn=np.full(n, -1), country=np.full(n, -1), lat=np.full(n, np.nan), lon=np.full(n, np.nan),
            as_names=[], country_names=[], ids=[str(i) for i in range(n)],
        )

    def as_label(self, i: int) -> str | None:
        return self.as_names[self.asn[i]] if self.asn[i] >= 0 else None

    def country_label(self, i: int) -> str | None:
        return self.country_names[self.country[i]] if self.country[i] >= 0 else None


def _null(s: str) -> bool:
    return s.strip().lower() in ("", "null", "none", "nan")


def _codes(values: list[str | None]) -> tuple[np.ndarray, list[str]]:
    names: dict[str, int] = {}
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        if v is None:
            continue
        out[i] = names.setdefault(v, len(names))
    return out, list(names)


def read_locations(path: str | Path) -> Locations:
    """userlist.txt or wslist.txt (any of its layouts, gzip or not) as Locations by row position."""
    lines = read_text(path, encoding="latin-1").splitlines()
    header_at = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")), None)
    if header_at is None:
        raise ValueError(f"{path}: no [Column] header line")
    header = [h.strip().strip("[]").strip().lower() for h in lines[header_at].split("\t")]

    def col(*names: str) -> int | None:
        for n in names:
            if n in header:
                return header.index(n)
        return None

    c_id, c_country, c_as = col("user id", "service id", "id"), col("country"), col("as")
    c_lat, c_lon = col("latitude"), col("longitude")
    if c_country is None or c_as is None:
        raise ValueError(f"{path}: header has no Country / AS column: {header}")
    ids, countries, ases, lats, lons = [], [], [], [], []
    for ln in lines[header_at + 1:]:
        if not ln.strip() or set(ln.strip()) <= {"="}:
            continue
        f = ln.split("\t")
        get = lambda c: f[c] if c is not None and c < len(f) else ""  # noqa: E731
        ids.append(get(c_id).strip())
        countries.append(None if _null(get(c_country)) else get(c_country).strip())
        a = get(c_as)
        # "AS7018 AT&T Services, Inc." -> "AS7018": the number identifies the system
        ases.append(None if _null(a) else a.strip().split()[0])
        lats.append(math.nan if _null(get(c_lat)) else float(get(c_lat)))
        lons.append(math.nan if _null(get(c_lon)) else float(get(c_lon)))
    asn, as_names = _codes(ases)
    country, country_names = _codes(countries)
    return Locations(asn=asn, country=country, lat=np.asarray(lats), lon=np.asarray(lons),
                     as_names=as_names, country_names=country_names, ids=ids)


@dataclass
class QoSData:
    """A QoS matrix (users x services, NaN = unobserved) with what is known of its nodes' locations."""

    values: np.ndarray
    users: Locations | None = None
    services: Locations | None = None
    metric: str = "rt"

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    @property
    def location_aware(self) -> dict[str, bool]:
        """Which side has any known AS or country (the side without runs with omega = 1)."""
        def known(loc):
            return loc is not None and bool(((loc.asn >= 0) | (loc.country >= 0)).any())
        return {"users": known(self.users), "services": known(self.services)}


def load(matrix: str | Path, users: str | Path | None = None, services: str | Path | None = None,
         user_index: str | Path | None = None, service_index: str | Path | None = None,
         metric: str = "rt") -> QoSData:
    """A matrix and, when given, its location lists mapped through the optional index files.

    Without an index file, matrix row/column k is list row k (the full WS-DREAM layout).
    """
    values = read_matrix(matrix)
    m, n = values.shape
    u_loc = s_loc = None
    if users is not None:
        u_loc = read_locations(users)
        u_loc = u_loc.subset(read_index(user_index)) if user_index else u_loc
    elif user_index is not None:
        raise ValueError("--user-index needs --users")
    if services is not None:
        s_loc = read_locations(services)
        s_loc = s_loc.subset(read_index(service_index)) if service_index else s_loc
    elif service_index is not None:
        raise ValueError("--service-index needs --services")
    for side, loc, size in (("users", u_loc, m), ("services", s_loc, n)):
        if loc is not None and len(loc) != size:
            raise ValueError(f"{side}: {len(loc)} locations for a matrix side of {size} "
                             f"(give an index file mapping matrix positions to list rows)")
    return QoSData(values=values, users=u_loc, services=s_loc, metric=metric)


def write_matrix(values: np.ndarray, path: str | Path, compress: bool | None = None, fmt: str = "%.4g") -> Path:
    """Write a matrix in the WS-DREAM layout (-1 for unobserved); gzip when the name ends in .gz."""
    path = Path(path)
    buf = io.StringIO()
    v = np.where(np.isnan(values), -1.0, values)
    np.savetxt(buf, v, fmt=fmt, delimiter="\t")
    data = buf.getvalue().encode()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_locations(locs: Locations, path: str | Path) -> Path:
    """Write a userlist.txt / wslist.txt that read_locations reads back (an [ID] [Country] [AS]
    [Latitude] [Longitude] header, a rule, one tab-separated row per node; unknowns left empty), so a
    generated population can enter the pipeline the way the real files do."""
    path = Path(path)

    def cell(v) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    rows = ["[ID]\t[Country]\t[AS]\t[Latitude]\t[Longitude]", "=" * 10]
    rows += [f"{locs.ids[i]}\t{cell(locs.country_label(i))}\t{cell(locs.as_label(i))}\t{cell(float(locs.lat[i]))}"
             f"\t{cell(float(locs.lon[i]))}" for i in range(len(locs))]
    path.write_text("\n".join(rows) + "\n", encoding="latin-1")
    return path
