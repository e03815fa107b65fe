"""Agents grouped by domain: sensors (filter, features), scoring (OSR score, tuner), control."""
