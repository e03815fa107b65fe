"""pipelines.online.snapshot: complete snapshots only, never-reused ids, an atomic LIVE pointer, hot reload."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.online import snapshot as snap


def write(model_id, tables, model_str, meta, root):
    return snap.write_snapshot(model_id, tables, model_str, meta, root=root)


def test_write_and_load_round_trip(tmp_path, snapshot_tables, propensity_model_str, snapshot_meta):
    folder = write("m1", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    assert folder == tmp_path / "m1"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{t}.parquet" for t in snap.TABLES] + ["propensity.txt", "meta.json"])
    assert snap.live_model_id(tmp_path) is None
    s = snap.load_snapshot("m1", root=tmp_path)
    assert s.model_id == "m1" and s.meta["model_id"] == "m1" and s.folder == folder
    assert s.raw_range == (0.0, 1.0)
    assert list(s.topn["u1"][0]) == ["i0", "i1", "i2"]
    np.testing.assert_allclose(s.topn["u1"][1], [1.0, 0.5, 0.25])
    assert list(s.topn["u2"][0]) == ["i4", "i3"]  # ordered by rank, not by file order
    # popular fallback: the top_n most bought items, preference = popularity / max popularity
    assert list(s.popular[0]) == ["i2", "i5", "i0"]
    np.testing.assert_allclose(s.popular[1], [1.0, 7 / 9, 5 / 9])
    assert s.items.loc["i1", "category"] == "lunch"
    assert s.users["u2"]["peak_hr"] == 180.0
    np.testing.assert_allclose(s.stores_xy, [[5.0, 5.0], [50.0, 60.0]])
    assert s.preferences["u2"]["opted_out"] and not s.preferences["u1"]["opted_out"]
    assert s.booster.num_trees() == 30


def test_default_root_is_under_osr_home(osr_home, snapshot_tables, propensity_model_str, snapshot_meta):
    folder = snap.write_snapshot("m1", snapshot_tables, propensity_model_str, snapshot_meta)
    assert folder == osr_home / "snapshots" / "m1"
    snap.set_live("m1")
    assert snap.load_snapshot().model_id == "m1"


def test_missing_table_is_refused(tmp_path, snapshot_tables, propensity_model_str, snapshot_meta):
    del snapshot_tables["rules"], snapshot_tables["stores"]
    with pytest.raises(ValueError, match=r"lacks tables \['rules', 'stores'\]"):
        write("m1", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    assert not any(tmp_path.iterdir())


def test_reused_model_id_is_refused(tmp_path, snapshot_tables, propensity_model_str, snapshot_meta):
    write("m1", snapshot_tables, propensity_model_str, {**snapshot_meta, "note": "first"}, tmp_path)
    with pytest.raises(FileExistsError, match="never reused"):
        write("m1", snapshot_tables, propensity_model_str, {**snapshot_meta, "note": "second"}, tmp_path)
    assert snap.load_snapshot("m1", root=tmp_path).meta["note"] == "first"


def test_refused_write_leaves_no_partial_folder(tmp_path, snapshot_tables, propensity_model_str, snapshot_meta):
    write("m1", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    with pytest.raises(FileExistsError):
        write("m1", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m1"]


def test_set_live_switches_the_pointer(tmp_path, snapshot_tables, propensity_model_str, snapshot_meta):
    write("m1", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    write("m2", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    snap.set_live("m1", root=tmp_path)
    assert snap.live_model_id(tmp_path) == "m1"
    snap.set_live("m2", root=tmp_path)
    assert (tmp_path / "LIVE").read_text() == "m2"
    assert not (tmp_path / "LIVE.tmp").exists()
    assert snap.load_snapshot(root=tmp_path).model_id == "m2"


def test_set_live_refuses_incomplete_snapshot(tmp_path, snapshot_tables, propensity_model_str, snapshot_meta):
    write("m1", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    snap.set_live("m1", root=tmp_path)
    (tmp_path / "m2").mkdir()
    (tmp_path / "m2" / "topn.parquet").write_bytes(b"half")
    with pytest.raises(FileNotFoundError, match="no complete snapshot m2"):
        snap.set_live("m2", root=tmp_path)
    with pytest.raises(FileNotFoundError):
        snap.set_live("m3", root=tmp_path)
    assert snap.live_model_id(tmp_path) == "m1"


def test_set_live_is_atomic_when_the_swap_fails(tmp_path, monkeypatch, snapshot_tables, propensity_model_str,
                                                snapshot_meta):
    write("m1", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    write("m2", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    snap.set_live("m1", root=tmp_path)
    calls = []

    def failing_replace(src, dst):
        calls.append((str(src), str(dst)))
        raise OSError("disk gone")

    monkeypatch.setattr(snap.os, "replace", failing_replace)
    with pytest.raises(OSError):
        snap.set_live("m2", root=tmp_path)
    # the pointer is replaced by one rename of a fully written temp file, so a failure leaves the old one whole
    assert calls == [(str(tmp_path / "LIVE.tmp"), str(tmp_path / "LIVE"))]
    assert (tmp_path / "LIVE").read_text() == "m1"


def test_load_without_live_snapshot_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="osr nightly"):
        snap.load_snapshot(root=tmp_path)


def test_live_snapshot_picks_up_a_new_live(tmp_path, snapshot_tables, propensity_model_str, snapshot_meta):
    live = snap.LiveSnapshot(root=tmp_path, check_every_s=5.0)
    with pytest.raises(FileNotFoundError):
        live.refresh()
    clock = [100.0]
    live._time = lambda: clock[0]
    write("m1", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    snap.set_live("m1", root=tmp_path)
    s1 = live.refresh()
    assert s1.model_id == "m1"
    write("m2", snapshot_tables, propensity_model_str, snapshot_meta, tmp_path)
    snap.set_live("m2", root=tmp_path)
    clock[0] += 1.0
    assert live.refresh() is s1  # within check_every_s: no re-read of LIVE
    assert live.refresh(force=True).model_id == "m2"  # e.g. on a control.models announcement
    snap.set_live("m1", root=tmp_path)
    clock[0] += 5.0
    s3 = live.refresh()
    assert s3.model_id == "m1" and s3 is not s1  # after check_every_s, the new pointer is followed
    clock[0] += 5.0
    assert live.refresh() is s3  # same LIVE: the loaded snapshot is kept, not reloaded
