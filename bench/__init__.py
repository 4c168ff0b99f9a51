"""pesarail benchmarks (issue 6). Never shipped: this folder is not part of the package.

Run ``python -m bench.run SCENARIO [--seconds N]`` (or ``pesarail bench``, ``make bench``).
See ``docs/performance.md``.
"""
