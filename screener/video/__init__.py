"""Video in: finding the videos (`discover`), decoding them whatever their container or
orientation (`decoding`, `container`, `orientation`), and choosing the key frames a scan reads
(`keyframes`).
"""
