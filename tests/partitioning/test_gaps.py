"""pipelines.partitioning.gaps: holes in an agent's input, found from its watermarks."""

from __future__ import annotations

from pipelines.partitioning.gaps import advanced, missing


def test_a_new_owner_starting_past_the_watermark_finds_the_skipped_offsets():
    # partition 1 was processed up to 251; its next owner's first batch starts at 263 (Faust committed 252..262)
    assert missing({1: 251, 0: 215}, [(1, 263), (0, 216), (1, 264), (0, 217)]) == {1: (252, 262)}


def test_contiguous_input_and_redeliveries_have_no_hole():
    assert missing({0: 10}, [(0, 11), (0, 12), (0, 13)]) == {}
    assert missing({0: 10}, [(0, 5), (0, 6), (0, 11)]) == {}  # a replay from an older commit
    assert missing({}, [(0, 500)]) == {}  # no watermark yet: nothing to check against


def test_a_hole_inside_a_batch_is_found():
    assert missing({0: 3}, [(0, 4), (0, 5), (0, 9), (0, 10)]) == {0: (6, 8)}


def test_watermarks_advance_to_the_highest_offset_seen():
    assert advanced({0: 10, 1: 7}, [(0, 11), (0, 12), (2, 3), (0, 9)]) == {0: 12, 2: 3}
