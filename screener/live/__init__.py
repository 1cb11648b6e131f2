"""`screener live`, the original real-time program (a webcam window that announced "Sad
Emotion Detected"), on the scan's own stages: frames from a camera or stream (`source`), the
loop (`monitor`), its alerts (`alerts`), the window's drawings (`overlay`), the annotated
recording (`recording`), and what it prints (`output`).
"""
