"""Sensor-noise filtering: per-device Kalman filters (`kalman`), the stream's filter stage
(`stage`), consensus fusion of a person's devices (`consensus`, not yet on the stream path),
and accuracy against ground truth (`accuracy`, `simulate`).

Pure numpy / Python; the stream calls `stage.filter_upload` once per upload and keeps the
returned JSON-serializable per-device state in its table.
"""
