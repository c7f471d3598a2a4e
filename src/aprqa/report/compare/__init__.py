"""The compare report: ``view`` (the report arranged for a page), ``console`` (the terminal summary),
``html`` and ``markdown`` (the pages of ``--report``), ``hints`` (common mistakes the numbers reveal)."""
