"""The job layer: background work recorded in the database, woken up through a broker.

One declaration per job kind (`kinds`), the named SQL that enqueues, claims, renews, settles and
sweeps jobs (`store`), the heartbeat that keeps a running job's lease (`heartbeat`), the runner that
takes a job from claim to settlement (`runner`), and the publisher the process hands in (`publisher`).
It knows nothing of Celery, the API or the features: they build on it.
"""
