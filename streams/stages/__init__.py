"""The pipeline stages: each a thin adapter from its input topics to a pure processor and back to topics, declared
once by the ``SPEC`` of its module and listed in data-flow order in ``registry``."""
