"""The emotion model at run time: loading an exported network, batching, the calibration
temperature and the mirrored views of unsure faces. Making models is the lab's job
(`screener.lab`), which a scan never imports.
"""
