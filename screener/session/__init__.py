"""One session's numbers and level: per-face labels aggregated into metrics (`aggregate`),
the corrected negative share with its interval (`estimate`), the rule set that turns metrics
into a level (`rules`), and the evidence frames that show why (`evidence`).
"""
