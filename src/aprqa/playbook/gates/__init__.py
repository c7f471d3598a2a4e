"""Gate measurements, one module per family; each gate is a function that returns a ``GateOutcome``.

- integrity.py: G0 — the source opens and validates, config.json vs tensor shapes, ``expected_*`` facts;
- conversion.py: F-CONV-X-Y (tensor level + output level) and F-GOLDEN-RULE-001 (every prompt);
- structure.py: F-CONV-CARD-001, F-CONV-NAME-001, F-CONV-TOK-001;
- roundtrip.py: F-CONV-RT-001..004 (lossless chains) and F-CONV-IDEM-001 (convert twice).

Gates never pass vacuously: zero tensors, zero conversions, a filter that matches nothing, a
conversion or inference that could not run — each is Falsified or Crashed, never Corroborated.
The thresholds a gate used come from ``thresholds.thresholds_for`` (recorded in every record,
derived again by ``aprqa verify-evidence``). The executor (execute.py) picks the function by the
planned gate's ``GateKind``.
"""
