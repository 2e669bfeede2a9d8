"""lstm-vg: show, measure and reproduce the vanishing gradient of tanh RNNs and how LSTMs fix it."""

__version__ = "0.1.0"
