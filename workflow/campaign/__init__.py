"""The campaign: what to pick, and the record of what was picked.

- the loop: ``engine`` (choose, record, submit, wait), ``dispatcher`` (jobs in flight, the retry policy),
  ``evaluator`` (the interface it owns), ``lock`` (one driver per campaign);
- its inputs: ``config`` (the campaign file), ``pool`` and ``poolgen``, ``candidates`` (descriptors, prior
  data, training data), ``calibration`` (the maps a campaign file may name);
- its storage: ``store``.

Reading results is :mod:`workflow.results`. The loop depends on the
:class:`~workflow.campaign.evaluator.Evaluator` interface only; the concrete evaluators live in
:mod:`workflow.dispatch` and the CLI wires them in.
"""
