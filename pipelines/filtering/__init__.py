"""Sensor-noise filtering: per-device Kalman filters, consensus fusion of a person's devices, scoring.

Pure numpy / Python; the stream calls these functions on micro-batches and keeps the returned
JSON-serializable state in its tables.
"""
