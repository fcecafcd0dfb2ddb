"""Dispatch: site profiles (``profiles``) as Parsl configurations, the providers Parsl lacks
(``providers``), and the evaluators that run property jobs or look results up (``evaluators``).

Implements the campaign's :class:`~workflow.campaign.evaluator.Evaluator` interface and runs
:mod:`workflow.job` on workers; nothing below imports this package.
"""
