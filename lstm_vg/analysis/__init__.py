"""The analysis side: tables, claims and figures read from results folders only.

It never imports the trainer or JAX (tests/test_layout.py checks this): `lstm-vg report` and
`lstm-vg plot` start fast and work on a machine that only holds results.
"""
