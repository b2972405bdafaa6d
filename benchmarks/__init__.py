"""redis-store benchmarks: ``python -m benchmarks`` (see README.md here).

One module per family (throughput, plainredis, server_cost, growth,
breakdown), sharing ``harness`` (server, timing, concurrency driver,
percentiles, medians) and ``workload`` (realistic meerkat data).
"""
