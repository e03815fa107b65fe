"""Agents grouped by domain; a worker's app autodiscovers the modules OSR_STREAM_AGENTS names:
moments (the real-time path: validate -> fuse -> features -> score -> tune) and control (model
reload) by default, profiles (the repartitioned profile stream) in an app of its own. Each agent
is one call into pipelines."""
