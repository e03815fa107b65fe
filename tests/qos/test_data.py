"""WS-DREAM loaders: missing cells, gzip by magic bytes, header-driven location lists, index mapping."""

import gzip

import numpy as np
import pytest

from pipelines.qos import data, generate

WSDREAM = generate.wsdream_dir()

USERLIST = (
    "[User ID]\t[IP Address]\t[Country]\t[IP No.]\t[AS]\t[Latitude]\t[Longitude]\n"
    "=====================\t\t\t\t\t\t\n"
    "0\t1.1.1.1\tUnited States\t1\tAS7018 AT&T Services, Inc.\t38\t-97\n"
    "1\t1.1.1.2\tUnited States\t2\tAS7018 AT&T Services, Inc.\t38.5\t-122\n"
    "2\t1.1.1.3\tJapan\t3\tnull\tnull\tnull\n"
)
WSLIST = (
    "[Service ID]\t[WSDL Address]\t[Service Provider]\t[IP Address]\t[Country]\t[IP No.]\t[AS]\t[Latitude]\t"
    "[Longitude]\n"
    "=====\n"
    "0\thttp://a?WSDL\ta.com\t8.8.8.8\tUnited States\t1\tAS3356 Level 3\t38\t-97\n"
    "7\thttp://b?WSDL\tb.com\t8.8.8.9\tMünchen-Land\t2\tAS3320 Deutsche Telekom\t48\t11\n"
    "7\thttp://b?WSDL\tb.com\t8.8.8.9\tGermany\t2\tnull\t48\t11\n"
)


def test_matrix_missing_cells_and_gzip(tmp_path):
    text = "0.5\t-1\t2.0\n1\t\t3\n4\n"
    plain = tmp_path / "m.txt"
    plain.write_text(text)
    packed = tmp_path / "m.bin"  # gzip detected by content, not by name
    packed.write_bytes(gzip.compress(text.encode()))
    for p in (plain, packed):
        m = data.read_matrix(p)
        assert m.shape == (3, 3)
        assert np.isnan(m[0, 1]) and np.isnan(m[1, 1]) and np.isnan(m[2, 1]) and np.isnan(m[2, 2])
        assert m[0, 2] == 2.0 and m[2, 0] == 4.0


def test_trailing_tab_does_not_add_a_column(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text("1\t2\t\n3\t4\t\n")
    assert data.read_matrix(p).shape == (2, 2)


def test_locations_by_header_latin1_duplicates_and_null(tmp_path):
    u = tmp_path / "userlist.txt.gz"
    u.write_bytes(gzip.compress(USERLIST.encode()))
    s = tmp_path / "wslist.txt"
    s.write_bytes(WSLIST.encode("latin-1"))
    users = data.read_locations(u)
    assert len(users) == 3
    assert users.asn[0] == users.asn[1] >= 0 and users.asn[2] == -1
    assert users.as_label(0) == "AS7018"
    assert users.country[0] == users.country[1] != users.country[2]
    assert np.isnan(users.lat[2])
    services = data.read_locations(s)
    assert len(services) == 3  # two rows with ID 7: row position is the index
    assert services.ids == ["0", "7", "7"]
    assert services.country_label(1) == "München-Land"
    assert services.asn[2] == -1


def test_load_maps_columns_through_the_index(tmp_path):
    s = tmp_path / "wslist.txt"
    s.write_bytes(WSLIST.encode("latin-1"))
    m = tmp_path / "m.txt"
    m.write_text("1\t2\n3\t4\n")
    idx = tmp_path / "idx.txt"
    idx.write_text("2\n0\n")
    d = data.load(m, services=s, service_index=idx)
    assert d.services.country_label(0) == "Germany" and d.services.country_label(1) == "United States"
    assert d.location_aware == {"users": False, "services": True}
    with pytest.raises(ValueError):
        data.load(m, services=s)  # 3 services listed for 2 columns, no index


@pytest.mark.skipif(not (WSDREAM / "rt_subset_150x500.txt.gz").exists(), reason="shared WS-DREAM data not present")
def test_real_files():
    d = data.load(WSDREAM / "rt_subset_150x500.txt.gz", services=WSDREAM / "wslist.txt.gz",
                  service_index=WSDREAM / "cloudrank_services.txt")
    assert d.shape == (150, 500) and not np.isnan(d.values).any()
    assert len(data.read_locations(WSDREAM / "wslist.txt.gz")) == 5825
    assert len(data.read_locations(WSDREAM / "userlist.txt.gz")) == 339


def test_write_matrix_round_trip(tmp_path):
    v = np.array([[1.5, np.nan], [0.25, 3.0]])
    back = data.read_matrix(data.write_matrix(v, tmp_path / "x.txt.gz"))
    assert np.allclose(np.nan_to_num(back, nan=-9), np.nan_to_num(v, nan=-9))


def test_written_locations_read_back(tmp_path):
    """write_locations is read_locations' counterpart: names, codes and unknowns survive the round trip."""
    import math

    import numpy as np

    from pipelines.qos.data import Locations, read_locations, write_locations

    locs = Locations(asn=np.array([0, 1, -1]), country=np.array([1, -1, 0]), lat=np.array([1.5, np.nan, -3.0]),
                     lon=np.array([2.0, 4.0, np.nan]), as_names=["AS7018", "AS3356"], country_names=["DE", "US"],
                     ids=["10", "11", "12"])
    back = read_locations(write_locations(locs, tmp_path / "userlist.txt"))
    assert back.ids == locs.ids
    assert [back.as_label(i) for i in range(3)] == ["AS7018", "AS3356", None]
    assert [back.country_label(i) for i in range(3)] == ["US", None, "DE"]
    assert back.lat[0] == 1.5 and math.isnan(back.lat[1]) and back.lon[1] == 4.0 and math.isnan(back.lon[2])
