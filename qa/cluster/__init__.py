"""More than one machine: build an index on a Ray cluster and serve its shards with Ray Serve.

Needs the `qa[cluster]` extra (ray[data,serve]); nothing outside this package imports Ray.

    runtime.py   connecting to a cluster (offline, contained) and starting a local one
    build.py     `qa build/add --ray`: read and split in tasks, embed on an actor pool, commit
    shards.py    a shard (adjacent segments) and what the router reads from it
    router.py    one question over every shard: statistics, candidates, fusion, answer
    fetched.py   what the router read from the shards, as the corpus the turn rules and answers read
    serve.py     the shards and the router as Ray Serve deployments (`qa serve --ray`)
    backend.py   `app.py --ray`: the chat app answering through the router
"""
