"""What the harness and the methods cost, not how well they edit: seconds per edit of every
method on every fast path, against the UNet calls alone (:mod:`~benchmarks.perf.speed`,
``make bench``), and items per second as one run's shards spread over GPUs
(:mod:`~benchmarks.perf.scaling`, ``make scaling``).
"""
