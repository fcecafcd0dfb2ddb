"""The campaign: its file (``config``), pool, candidates, the loop (``engine``) and its parts
(``dispatcher``, ``lock``), the store, and what reads it (``report``).

The loop depends on the :class:`~workflow.campaign.evaluator.Evaluator` interface only; the
concrete evaluators live in :mod:`workflow.dispatch` and the CLI wires them in.
"""
