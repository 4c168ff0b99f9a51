"""gunicorn config of the naive baseline: sync workers, 2 x cores + 1 of them (gunicorn's
own recommendation). Each worker process gets its own sandbox app (credential set):
the sandbox, like Daraja, revokes an app's token when a new one is issued, so workers
sharing one app while fetching a token per call would break each other's calls."""

import multiprocessing
import os

workers = 2 * multiprocessing.cpu_count() + 1
worker_class = "sync"
timeout = 60
accesslog = None
errorlog = "-"
loglevel = "warning"


def post_fork(server, worker):
    os.environ["NAIVE_APP_INDEX"] = str(worker.age % 64)
