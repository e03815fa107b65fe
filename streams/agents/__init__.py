"""Agents grouped by domain, found by the app's autodiscover: sensors (filter, features),
recommend (OSR score, tuner), control (model reload). Each agent is one call into pipelines."""
