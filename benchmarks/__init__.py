"""Benchmarks: the bridge side by side with raw SpiffWorkflow, in the same run.

Run them all with ``make bench`` (``python -m benchmarks``), or one by name::

    python -m benchmarks overhead countersign delivery storage memory
    python -m benchmarks --quick            # smaller sizes, for a smoke run
    python -m benchmarks countersign --profile profiles/   # pyinstrument, HTML and text

Each benchmark measures the bridge and its baseline in one process run, prints the figures,
and checks the ratio against its target (PASS/FAIL; docs/performance.md). The exit status is 1
when a target fails, so a run in CI shows it.

=============  =======================================================================  ========
benchmark      what is compared                                                         target
=============  =======================================================================  ========
overhead       200 leave approvals (start + 2 completions) through the bridge (SQLite   ≤ 2.0×
               file, durable commits, in-process fake centre, every call delivered)
               against raw SpiffWorkflow with a JSON serialize + deserialize per step
countersign    a parallel countersign with N signers (N = 10, 100, 1000), start + every ≤ 2.0×
               signer + the following task, persisted after every completion
               (durable=False; the wait for the disk printed beside it), against
               raw in-memory SpiffWorkflow; time per completion must not grow faster
delivery       5,000 pending taskHandle calls over a loopback HTTP fake centre:         ≥ 10×
               batched relay against one item per request (items per second)
storage        bytes stored per finished leave approval against SpiffWorkflow's        ≤ 25 %
               default serialized JSON of the same instance
memory         peak RSS of a bridge process serving 10,000 open instances              < 200 MB
=============  =======================================================================  ========

``docs/performance.md`` explains what the profiles showed and what the figures mean.
"""

from __future__ import annotations

__all__: list[str] = []
