"""The run report of evidence records (aprqa's or apr-qa's): ``evidence`` (records summarized as data),
``console`` (``aprqa report EVIDENCE`` in the terminal), ``view`` (a run arranged for a reviewer),
``html`` and ``markdown`` (its pages), ``write`` (both written at once), ``junit`` (junit.xml, summary.md)."""
