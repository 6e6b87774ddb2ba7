"""Evidence generators: what the docs measure, not what the suite checks.

``bench`` (``adamax-bench``, ``make bench``) times our fast paths side by side with the peers;
``deep`` (``make deep``) runs many generated trajectories per installed target and keeps their
summaries in ``docs/deep-runs/``; ``differences`` (``make differences``) regenerates
``docs/differences.md`` from real runs.  Nothing in the library or the suite imports them.
"""
