"""The application layer: every act the CLI, the server and Python callers perform.

One module per group of verbs — ``declared`` (apply), ``plan`` (what apply would do, and
its money effect), ``billing`` (run, forecast),
``purchases`` (quote, checkout, convert), ``lifecycle`` (create, edit, pause, resume,
cancel, delete), ``payments`` (pay, retry, refund, update links), ``delivery`` (the outbox),
``queries`` (listings, records, segments, reports, documents) and ``project`` (init, db
upgrade). Each operation takes a ``Context`` and plain arguments, returns values, and owns its
policies: a run applies the declared subscriptions first; every operation that changes state
delivers what it set off before it returns. The faces only parse and render.
"""

from abonnement.operations.context import Context

__all__ = ["Context"]
