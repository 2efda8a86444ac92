"""The stage runtime: what a stage declares and sees (``stage``: ``StageSpec``, ``Record``, ``Context``), the
loop that runs it (``runner``), the commit protocol (``checkpoint``), lane priority (``priority``), per-stream
state (``state``) and the worker metrics (``metrics``)."""
