"""``seqattn serve``: a translation and alignment server with an attention explorer.

:mod:`~seqattn.serve.service` holds the models and turns checked requests into the records
``seqattn translate``/``align`` write; :mod:`~seqattn.serve.batcher` decodes concurrent requests
as one batch; :mod:`~seqattn.serve.api` is the HTTP layer (FastAPI), with the explorer page in
``static/``. FastAPI and uvicorn come with the ``serve`` extra (``pip install 'seqattn[serve]'``).
"""
