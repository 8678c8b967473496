"""``adaptkit ui``: a local web app to launch, watch and judge runs (Starlette + uvicorn, the ``[ui]`` extra).

``status`` reads a run folder (state, progress, figures); ``files`` serves only what lies inside the
runs folder; ``security`` guards every request (host, token, same origin); ``drafts`` holds and validates
edited recipes through the CLI's own loader; ``jobs`` is the queue that starts each run as a real
``adaptkit run`` process in its own session; ``pages`` and ``api`` are the routes, ``app`` wires them and
``server`` starts uvicorn. ``templates/`` and ``static/`` ship as package data (no CDN: works offline).
"""
