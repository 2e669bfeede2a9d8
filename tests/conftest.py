"""One CPU device for every in-process test, whichever test starts JAX first: the CLI would
otherwise split the CPU into one device per core when it is the first (tests that need several
devices start their own process)."""

import jax

jax.config.update("jax_num_cpu_devices", 1)
