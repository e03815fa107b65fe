"""Everything a stream agent calls after filtering: the state vector (`features`), the OSR
score over a micro-batch (`osr_score`), the Notification Frequency Tuner (`tuner`), and the
published model snapshot the stream serves (`snapshot`). The same code scores batch backfills."""
