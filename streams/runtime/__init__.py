"""The stage runtime: the consume -> handle -> produce -> commit loop (``runner``), per-stream state
(``state``) and the worker metrics (``metrics``)."""
