"""The benchmark harness (``make bench``): floor endpoints and the query counter (mounted only by
``config.settings.bench``), and the script that loads a data set, serves the app under gunicorn
and measures it (``bench.run``)."""
