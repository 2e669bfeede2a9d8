"""The training side's host code: plan the batches of a config's runs, train them on the device
with the compiled loop of `lstm_vg.core`, and write every log, checkpoint and summary as it comes
(`loop.run_experiment`)."""
