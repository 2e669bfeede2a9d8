"""The functional core: pure JAX (arrays and pytrees in, arrays and pytrees out), no I/O, no
globals. Cells, tasks, the unrolled model with its hand-written backward pass, the per-timestep
gradient norms, and the training step, chunk and evaluation every cell and task shares."""
