"""The harness: everything around the methods that a benchmark needs, grouped by job.

``data`` (the splits) and ``models`` (the pipelines the methods run on) at the bottom; ``metrics``
(what an edit scores) over ``data``; ``toy`` (the toy world: its split, model, classifier and
training); ``run`` (a config checked, wired and run item by item into a run folder, and the one
reader of that folder); ``report`` (tables and figures from run folders) and ``perf`` (what
the methods cost) on top. ``methods`` (the registered methods, read from their declarations),
``devices`` and ``hub`` are shared by several. Each subpackage's docstring says what it holds; imports only go down
(``tests/test_layers.py``), and the library (``instdiffedit``, ``baselines``) never imports
the harness.
"""
