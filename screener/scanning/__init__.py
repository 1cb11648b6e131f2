"""The jobs that join the stages: one video analysed end to end (`analysis`), what `analyze`
prints (`analysis_output`), the batch `scan` over folders (`scan`), and its Dask workers
(`cluster`).
"""
