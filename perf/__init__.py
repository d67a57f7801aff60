"""pstfast performance suite: benchmarks, the legacy baseline, the cached corpus, the dashboard.

Not part of the default test run (pyproject's ``testpaths = ["tests"]``); see perf/README.md.
"""
