"""The results folder: the on-disk contract both sides share (docs/results-format.md).

`format` names the files and fields, `write` writes them (whole files, atomically), `summary`
makes summary.json's numbers from the logged rows and profiles, and `read` reads every file back,
for resuming a run and for the analysis side alike. Nothing here imports JAX.
"""
