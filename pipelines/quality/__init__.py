"""Data-quality gates (Great Expectations) that guard every hand-off."""
