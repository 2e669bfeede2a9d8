"""lstm-vg: show, measure and reproduce the vanishing gradient of tanh RNNs and how LSTMs fix it.

The Python API (`lstm_vg.api`; the README's "Use from Python"):

    import lstm_vg
    cfg = lstm_vg.load_config("configs/adding.yaml", overrides=["task.length=50"])
    results = lstm_vg.run(cfg, out="results")
    print(lstm_vg.report(results))
    lstm_vg.plot(results)
"""

__version__ = "0.1.0"

from lstm_vg.api import (  # noqa: E402  (after __version__, which the modules below read)
    Report,
    Reproduced,
    Trained,
    check_claims,
    choose_devices,
    config_from_dict,
    export,
    figures,
    load_config,
    load_experiment,
    load_results,
    plan,
    plot,
    report,
    reproduce,
    run,
)
from lstm_vg.errors import UserError  # noqa: E402

__all__ = [
    "Reproduced", "Report", "Trained", "UserError", "check_claims", "choose_devices",
    "config_from_dict", "export", "figures", "load_config", "load_experiment", "load_results",
    "plan", "plot", "report", "reproduce", "run",
]
