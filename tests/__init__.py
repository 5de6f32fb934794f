"""perpterm's tests (a regular package, so that a third-party distribution that installs a
top-level ``tests`` package, as py-clob-client does, cannot shadow it)."""
