"""A student over time: each session against the student's own baseline (`baseline`), and
whether their negative affect is rising (`trend`). Both read stored sessions.
"""
